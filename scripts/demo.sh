#!/usr/bin/env bash
# The main job, out of the box: builds `superficial`, trains the embedded demo pair from
# ../shared/data (configs/demo/base.yaml: pretraining; configs/demo/aligned.yaml: SFT with refusals)
# and the demo's judges (scripts/train-demo-judges.sh), runs the whole study on it with 2 MPI ranks
# (jobs/demo.yaml) and prints the per-task table.
# With --recovery it also compromises the aligned model (configs/demo/compromise.yaml) and
# evaluates how much safety the base→aligned head restores (jobs/recovery.yaml). With --transfer it
# trains a smaller pair (configs/demo/small-*.yaml), carries its bb head to the demo base and
# compares it with proxy-tuning and an in-context prefix (jobs/transfer.yaml). With --real it runs
# the study on real weights: SmolLM2-135M-Instruct (fetched as a GGUF file) and a safety-tuned
# sibling trained here (configs/real/safe.yaml, jobs/smollm2-study.yaml), then the recovery study on
# it (configs/real/compromise.yaml, jobs/smollm2-recovery.yaml).
# Every step is cached: a finished model or stage is not recomputed; a killed run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
RECOVERY=0
TRANSFER=0
REAL=0
for arg in "$@"; do
  case "$arg" in
    --recovery) RECOVERY=1 ;;
    --transfer) TRANSFER=1 ;;
    --real) REAL=1 ;;
    *) echo "usage: $0 [--recovery] [--transfer] [--real]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)" --target superficial
SF="$BUILD_DIR/src/superficial"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MPIRUN=(mpirun --oversubscribe -np 2)

"${MPIRUN[@]}" "$SF" train configs/demo/base.yaml
"${MPIRUN[@]}" "$SF" train configs/demo/aligned.yaml
SUPERFICIAL_BIN=$SF bash scripts/train-demo-judges.sh
"${MPIRUN[@]}" "$SF" run jobs/demo.yaml
echo
cat runs/demo/study/summary.md

if [[ $RECOVERY == 1 ]]; then
  "${MPIRUN[@]}" "$SF" train configs/demo/compromise.yaml
  "${MPIRUN[@]}" "$SF" run jobs/recovery.yaml
  echo
  cat runs/demo/recovery/summary.md
fi

if [[ $TRANSFER == 1 ]]; then
  "${MPIRUN[@]}" "$SF" train configs/demo/small-base.yaml
  "${MPIRUN[@]}" "$SF" train configs/demo/small-aligned.yaml
  "${MPIRUN[@]}" "$SF" run jobs/transfer.yaml
  echo
  cat runs/demo/transfer/summary.md
fi

if [[ $REAL == 1 ]]; then
  GGUF=$(bash scripts/fetch-models.sh | tail -n 1)
  mkdir -p runs/real
  ln -sfn "$GGUF" runs/real/smollm2.gguf
  "${MPIRUN[@]}" "$SF" train configs/real/safe.yaml
  "${MPIRUN[@]}" "$SF" run jobs/smollm2-study.yaml
  "${MPIRUN[@]}" "$SF" train configs/real/compromise.yaml
  "${MPIRUN[@]}" "$SF" run jobs/smollm2-recovery.yaml
  echo
  cat runs/real/study/summary.md
  echo
  cat runs/real/recovery/summary.md
fi
