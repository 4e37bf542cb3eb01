#!/usr/bin/env bash
# Builds on a machine without a GPU what scripts/gpu-run-packed.sh runs on one with a GPU, for GPU
# machines whose time is short or that have no compiler, build dependencies or network (where a
# GPU machine can build, scripts/gpu-check.sh is simpler). Into .gpu-pack/ (ignored by git):
#   bin/superficial, bin/test_cuda   built with CUDA and NCCL against the libtorch of the pip wheel
#                                    torch==TORCH_VERSION, which must be the GPU machine's own torch;
#   fallback-lib.tar.xz              this machine's copies of the system libraries they need beyond
#                                    glibc and libstdc++ (curl's, krb5's, ... for HDF5), used there
#                                    only where missing;
#   shared.tar.xz                    ../shared/data and the tiny pair's tokenizer;
#   source_dir, shared_dir           the paths compiled into the tests.
# and .gpu-deps/ (scripts/gpu-deps.sh) when it is not there yet. Take both folders to the GPU
# machine with the working tree (about 30 MB) and run `bash scripts/gpu-run-packed.sh` there.
#
# Needs here: the CUDA toolkit of the wheel's CUDA major version (nvcc and headers; NCCL headers),
# the Debian build dependencies (scripts/install-deps.sh), and pip with network ($PYTHON -m pip).
# The wheel (~530 MB) is unpacked once into $SUPERFICIAL_CACHE/torch-VERSION (default
# ~/.cache/superficial) without the Python parts.
# Usage: bash scripts/gpu-pack.sh TORCH_VERSION [BUILD_DIR]   e.g. 2.11.0 (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:?usage: gpu-pack.sh TORCH_VERSION [BUILD_DIR], the torch.__version__ of the GPU machine without +cuXXX}
BUILD=${2:-build-gpu}
PY=${PYTHON:-python3}
PACK=.gpu-pack
CACHE=${SUPERFICIAL_CACHE:-$HOME/.cache/superficial}/torch-$VERSION
SHARED=$(realpath "${SF_SHARED_DIR:-$PWD/../shared}")

if [[ ! -f $CACHE/torch/lib/libtorch.so ]]; then
  mkdir -p "$CACHE"
  # The libraries and headers are the same in every CPython build of a version: any tag will do.
  "$PY" -m pip download --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "torch==$VERSION" -d "$CACHE"
  unzip -q -o "$CACHE/torch-$VERSION-"*.whl 'torch/include/*' 'torch/lib/*' 'torch/share/*' 'torch/version.py' -d "$CACHE"
  rm -f "$CACHE/torch-$VERSION-"*.whl
fi
TORCH=$CACHE/torch
echo "gpu-pack: torch $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$TORCH/version.py") from $TORCH"

# TORCH_LIBRARY and c10_LIBRARY by hand: TorchConfig's find_library would take a system libtorch
# (Debian's, CPU only) before the wheel's. The wheel's libraries need CUDA libraries (cuDNN,
# cuSPARSELt, NVSHMEM, ...) that only the GPU machine has: the links leave their symbols to the
# loader there, and the tests are listed when they run, not after the build.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSUPERFICIAL_WITH_CUDA=ON -DSUPERFICIAL_WITH_NCCL=ON \
  -DCMAKE_PREFIX_PATH="$TORCH/share/cmake" -DTORCH_LIBRARY="$TORCH/lib/libtorch.so" \
  -Dc10_LIBRARY="$TORCH/lib/libc10.so" -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined \
  -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST -DSF_SHARED_DIR="$SHARED"
cmake --build "$BUILD" -j "$(nproc)" --target superficial test_cuda
if ! compgen -G ".gpu-deps/*.deb" > /dev/null; then bash scripts/gpu-deps.sh; fi

rm -rf "$PACK"
mkdir -p "$PACK/bin" "$PACK/fallback-lib"
cp "$BUILD/src/superficial" "$BUILD/tests/test_cuda" "$PACK/bin/"
strip "$PACK/bin/"*
pwd > "$PACK/source_dir"
echo "$SHARED" > "$PACK/shared_dir"
# Every library the binaries, orted and the MPI plugins load from this machine's system folders,
# with .gpu-deps unpacked in front and the wheel's libraries for torch; glibc's and the C++
# runtime's are left to the GPU machine (newer there, and compatible).
DEPS=$(mktemp -d /tmp/superficial-pack-deps.XXXXXX)
for f in .gpu-deps/*.deb; do dpkg -x "$f" "$DEPS"; done
L=$DEPS/usr/lib/x86_64-linux-gnu
LD_LIBRARY_PATH="$TORCH/lib:$L:$L/openmpi/lib:$L/hdf5/serial" ldd "$PACK/bin/"* "$DEPS/usr/bin/orted" \
  "$L/openmpi/lib/openmpi3/"*.so "$L/pmix2/lib/pmix/"*.so 2> /dev/null |
  awk '$3 ~ /^\/(usr\/)?lib\/x86_64-linux-gnu\// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|libresolv|libutil|libgcc_s|libstdc\+\+)\.so' |
  while read -r lib; do cp -L "$lib" "$PACK/fallback-lib/"; done
rm -rf "$DEPS"
tar -cJf "$PACK/fallback-lib.tar.xz" -C "$PACK" fallback-lib
rm -rf "$PACK/fallback-lib"
tar -cJf "$PACK/shared.tar.xz" -C "$SHARED" data models/HuggingFaceTB--SmolLM2-135M-Instruct/tokenizer.json
du -sh "$PACK" .gpu-deps
