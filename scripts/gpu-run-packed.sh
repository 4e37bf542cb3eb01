#!/usr/bin/env bash
# Runs, on a GPU machine, the CUDA checks that scripts/gpu-pack.sh built elsewhere: it needs only
# python3 with the torch the pack was built for (its libtorch, CUDA and NCCL libraries are used),
# dpkg, and the working tree with .gpu-pack/ and .gpu-deps/. Nothing is installed system-wide;
# the run writes under /tmp and, when the pack was built at other paths, makes links there (the
# tests carry the source and shared folders' paths).
#
# Stages (default: all, in this order):
#   env     the libraries found, `superficial cuda-info`
#   golden  test_cuda: golden logits on cuda in fp32 and bf16 against transformers, head systems
#           on the GPU against the CPU, collectives on CUDA tensors (one rank; NCCL with two, below)
#   tiny    tests/cuda/tiny_study.sh: the tiny study end to end on `device: cuda`
#   bench   `bench extract` of the tiny job on cuda in bf16 (the paths, not the speed)
#   ranks   two ranks under mpirun: with two GPUs or more, test_cuda's collectives through NCCL and
#           the tiny study with and without tensor parallelism; with one, the one-line error of the
#           rank that has none
# The log goes to $OUT/log.txt when OUT is set. Exit status: the number of failed stages.
# Usage: bash scripts/gpu-run-packed.sh [STAGE ...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PACK=$ROOT/.gpu-pack
LOG=${OUT:+$OUT/log.txt}
LOG=${LOG:-/tmp/gpu-run-packed.log}
exec > >(tee -a "$LOG") 2>&1
STAGES=${*:-env golden tiny bench ranks}
echo "gpu-run-packed: $(date -u +%FT%TZ) stages: $STAGES"

TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || {
  echo "gpu-run-packed: python3 has no torch" >&2
  exit 2
}
SITE=$(dirname "$(dirname "$TORCH_LIB")")
NVIDIA_LIBS=$(find -L "$SITE/nvidia" -maxdepth 3 -type d -name lib 2> /dev/null | tr '\n' ':')
DEPS=/tmp/superficial-gpu-deps
if [[ ! -d $DEPS/usr ]]; then
  mkdir -p "$DEPS"
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$DEPS"; done
fi
L=$DEPS/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$TORCH_LIB:$NVIDIA_LIBS$L:$L/openmpi/lib:$L/hdf5/serial"
if ldd "$PACK/bin/"* "$DEPS/usr/bin/orted" | grep -q "not found"; then
  ldd "$PACK/bin/"* "$DEPS/usr/bin/orted" | grep "not found" | sort -u
  mkdir -p /tmp/superficial-fallback && tar -xJf "$PACK/fallback-lib.tar.xz" -C /tmp/superficial-fallback
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/tmp/superficial-fallback/fallback-lib"
  echo "gpu-run-packed: the libraries above come from the pack's fallback-lib"
fi
# Debian's Open MPI and PMIx were configured with prefixes /usr and /usr/lib/x86_64-linux-gnu/pmix2.
export PATH="$DEPS/usr/bin:$PATH" OPAL_PREFIX="$DEPS/usr" PMIX_INSTALL_PREFIX="$L/pmix2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

SRC=$(cat "$PACK/source_dir")
SHARED=$(cat "$PACK/shared_dir")
if [[ $(realpath "$SRC" 2> /dev/null) != "$ROOT" ]]; then
  [[ -e $SRC ]] && {
    echo "gpu-run-packed: $SRC (the pack's source folder) exists here and is not this tree" >&2
    exit 2
  }
  mkdir -p "$(dirname "$SRC")" && ln -s "$ROOT" "$SRC"
fi
if [[ ! -d $SHARED/data ]]; then mkdir -p "$SHARED" && tar -xJf "$PACK/shared.tar.xz" -C "$SHARED"; fi
cd "$SRC" || exit 2
BIN=$SRC/.gpu-pack/bin
export SUPERFICIAL_BIN=$BIN/superficial SUPERFICIAL_SCHEMA_DIR=$SRC/results-schema
export SUPERFICIAL_TINY_TOKENIZER=$SHARED/models/HuggingFaceTB--SmolLM2-135M-Instruct/tokenizer.json
TINY_MODELS=/tmp/superficial-gpu-tiny-models
TINY=(--set "data_root=$SHARED/data" --set "models.tiny-base.path=$TINY_MODELS/base"
  --set "models.tiny-chat.path=$TINY_MODELS/aligned")

failed=0
for stage in $STAGES; do
  echo "== $stage $(date -u +%T)"
  case $stage in
    env)
      nvidia-smi -L
      ldd "$BIN/superficial" | grep -E "libtorch|nccl|cudart|libmpi\.|hdf5|yaml"
      "$BIN/superficial" cuda-info
      ;;
    golden) timeout 300 "$BIN/test_cuda" --gtest_color=no ;;
    tiny) timeout 600 bash tests/cuda/tiny_study.sh "$BIN/superficial" "$SRC" "$SHARED/data" /tmp/superficial-gpu-tiny ;;
    bench)
      bash scripts/make-tiny-pair.sh "$TINY_MODELS" > /dev/null &&
        timeout 120 "$BIN/superficial" bench extract jobs/tiny.yaml --set device=cuda "${TINY[@]}" \
          --set models.tiny-base.dtype=bfloat16 --set models.tiny-chat.dtype=bfloat16
      ;;
    ranks)
      [[ -d $TINY_MODELS/base ]] || bash scripts/make-tiny-pair.sh "$TINY_MODELS" > /dev/null
      gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
      timeout 300 mpirun.openmpi -np 2 "$BIN/superficial" run jobs/tiny.yaml --set device=cuda \
        --set run_dir=/tmp/superficial-gpu-ranks "${TINY[@]}" > /tmp/superficial-gpu-ranks.log 2>&1
      rc=$?
      tail -5 /tmp/superficial-gpu-ranks.log
      if ((gpus >= 2)); then
        ((rc == 0)) &&
          timeout 120 mpirun.openmpi -np 2 "$BIN/test_cuda" --gtest_color=no --gtest_filter=Cuda.CollectivesOnEachRanksGpu &&
          timeout 300 mpirun.openmpi -np 2 "$BIN/superficial" run jobs/tiny.yaml --set device=cuda \
            --set run_dir=/tmp/superficial-gpu-ranks-tp2 --set parallel.tensor=2 "${TINY[@]}"
      else
        ((rc != 0)) && grep -q "rank 1 (local rank 1 on .*) has no GPU of its own: it sees 1 CUDA device" \
          /tmp/superficial-gpu-ranks.log
      fi
      ;;
    *) echo "unknown stage $stage" && false ;;
  esac
  rc=$?
  echo "== $stage: $([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")"
  ((rc == 0)) || failed=$((failed + 1))
done
echo "gpu-run-packed: $failed failed stage(s)"
exit "$failed"
