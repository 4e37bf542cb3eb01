#!/usr/bin/env bash
# Builds superficial with CUDA and NCCL against the libtorch inside an installed PyTorch and runs
# the `cuda` test label: golden logits on cuda in fp32 and bf16 (tolerance table in
# tests/cuda/test_cuda.cpp), a head system on the GPU against the CPU, collectives on CUDA tensors
# (through NCCL across two ranks where there are two GPUs), and the tiny study end to end on
# `device: cuda`. Meant to finish in under 10 minutes on a 16-core GPU machine.
#
# What it needs, and how to bring it:
#   - an NVIDIA GPU and `python3` with a CUDA build of torch (its libtorch headers, CMake config and
#     libraries, and the NCCL it ships in site-packages/nvidia/nccl): the GPU images of this kind of
#     workplace have it; elsewhere `pip install torch`.
#   - the CUDA toolkit (nvcc, for find_package(CUDAToolkit)), CMake >= 3.20 and a C++17 compiler.
#   - the other build dependencies (MPI, HDF5, yaml-cpp, nlohmann-json, CLI11, spdlog, fmt,
#     utf8proc, OpenSSL, GoogleTest). With Debian/Ubuntu packages installed they are found as
#     usual; on a machine without them and without network, run `bash scripts/gpu-deps.sh` where a
#     package registry is reachable and bring the folder .gpu-deps along: this script unpacks its
#     .deb files into a private prefix (nothing is installed system-wide).
# Usage: bash scripts/gpu-check.sh [BUILD_DIR]      (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
  echo "gpu-check: $PY has no torch with a usable GPU (see the header of this script for what it needs)" >&2
  exit 2
fi
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
echo "gpu-check: $("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))')"
PREFIXES=("$TORCH_PREFIX")
if [[ -d .gpu-deps ]] && compgen -G ".gpu-deps/*.deb" > /dev/null; then
  DEPS=$(mktemp -d /tmp/superficial-gpu-deps.XXXXXX)
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$DEPS"; done
  PREFIXES+=("$DEPS/usr")
  export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}"
  # Debian's Open MPI and PMIx were configured with prefixes /usr and /usr/lib/x86_64-linux-gnu/pmix2:
  # these move them (plugins, orted, help files) to the private prefix.
  export PATH="$DEPS/usr/bin:$PATH" OPAL_PREFIX="$DEPS/usr" PMIX_INSTALL_PREFIX="$DEPS/usr/lib/x86_64-linux-gnu/pmix2"
  echo "gpu-check: build dependencies from .gpu-deps unpacked into $DEPS"
fi
# The libtorch libraries must be found at run time too.
TORCH_LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
IFS=';'
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSUPERFICIAL_WITH_CUDA=ON -DSUPERFICIAL_WITH_NCCL=ON \
  -DCMAKE_PREFIX_PATH="${PREFIXES[*]}" -DSF_SHARED_DIR="${SF_SHARED_DIR:-$PWD/../shared}"
unset IFS
cmake --build "$BUILD" -j "$(nproc)" --target superficial test_cuda test_model test_heads
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
ctest --test-dir "$BUILD" -L cuda --output-on-failure
