#!/usr/bin/env bash
# Downloads, on a machine with Debian 12's package registry, the .deb files of every build
# dependency of superficial except libtorch and CUDA (MPI, HDF5, yaml-cpp, nlohmann-json, CLI11,
# spdlog, fmt, utf8proc, OpenSSL headers, GoogleTest), about 16 MB, into OUT_DIR (default
# .gpu-deps, ignored by git). scripts/gpu-check.sh unpacks them into a private prefix on a GPU
# machine that has PyTorch and CUDA but no network and no Debian dev packages.
set -euo pipefail
OUT=${1:-.gpu-deps}
mkdir -p "$OUT"
cd "$OUT"
apt-get download \
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 libsz2 libaec0 libaec-dev libcurl4 \
  libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  libutf8proc-dev libutf8proc2 libssl-dev libgtest-dev libgmock-dev \
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-2.1-7 \
  libevent-pthreads-2.1-7 libevent-core-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1 libpsm2-2 libnl-3-200 \
  libnl-route-3-200 libxnvctrl0 libmunge2 libpsm-infinipath1 libltdl7
du -sh .
