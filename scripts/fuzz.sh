#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz, built by the `asan` CMake preset) for SECONDS each and
# prints one JSON line per target, then one line with the totals:
#   {"target":"safetensors","seconds":60,"execs":123456,"crashes":0,"child_reports":0,"slow_units":0,"coverage":812,"features":2301,"corpus":57}
#   {"total_execs":...,"total_crashes":0,"targets":9}
# execs: inputs run; crashes: 1 if the target crashed, hung (> 25 s), leaked, ran out of memory or
# raised a sanitizer report or an untyped exception (libFuzzer stops there; the input is kept in
# $FUZZ_WORK/<target>/artifacts); child_reports: inputs on which a child process of File::open raised
# a sanitizer report that the target then refused (a libhdf5 memory error the probe absorbed);
# slow_units: inputs that took more than 10 s but less than the timeout (libFuzzer keeps them as
# slow-unit-*; for h5, typically a probe child stopped after 20 s without progress);
# coverage / features: libFuzzer's edge coverage and feature counts at the end.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]
#   BUILD_DIR  the build with SUPERFICIAL_FUZZ=ON (default build-asan):
#              cmake --preset asan && cmake --build build-asan -j2 --target fuzz_safetensors ...
#   FUZZ_WORK  where each target's growing corpus, artifacts and log go (default $BUILD_DIR/fuzz-work);
#              the committed seeds (tests/fuzz/corpus/<target>) are read, never written.
# A crash input is fixed in the code and then committed under tests/fuzz/regressions/<target>/,
# which the normal test suite replays (test_fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
BUILD_DIR=${BUILD_DIR:-build-asan}
FUZZ_WORK=${FUZZ_WORK:-$BUILD_DIR/fuzz-work}
if (($# > 0)); then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/targets/*.cpp; do
    name=$(basename "$f" .cpp)
    [[ $name == common ]] || targets+=("$name")
  done
fi
# Leaks inside libhdf5 on damaged files are HDF5's (not instrumented, not ours): suppressed.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/fuzz/ubsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export OMP_NUM_THREADS=1
total_execs=0
total_crashes=0
for t in "${targets[@]}"; do
  bin=$BUILD_DIR/tests/fuzz_$t
  [[ -x $bin ]] || { echo "scripts/fuzz.sh: $bin not built (cmake --build $BUILD_DIR --target fuzz_$t)" >&2; exit 2; }
  work=$FUZZ_WORK/$t
  mkdir -p "$work/corpus" "$work/artifacts"
  before=$(find "$work/artifacts" -type f -name 'crash-*' | wc -l)
  slow_before=$(find "$work/artifacts" -type f -name 'slow-unit-*' | wc -l)
  # -rss_limit_mb: libtorch alone takes ~300 MB; -timeout: one input may not take longer.
  # libFuzzer stops at its first finding and exits non-zero: that is the target's crash. A child
  # process that File::open forks (src/io/h5_probe.hpp) inherits libFuzzer's death callback, so a
  # sanitizer report in the child also leaves a crash-* file although the target refused the input
  # and went on: those are counted apart as child_reports.
  status=0
  "$bin" -max_total_time="$SECS" -print_final_stats=1 -timeout=25 -rss_limit_mb=4096 -max_len=262144 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" "tests/fuzz/corpus/$t" > "$work/log" 2>&1 || status=$?
  after=$(find "$work/artifacts" -type f -name 'crash-*' | wc -l)
  crashes=$((status != 0 ? 1 : 0))
  crash_files=$((after - before))
  child_reports=$((crash_files > crashes ? crash_files - crashes : 0))  # a hang's or leak's file is not crash-*
  slow_units=$(($(find "$work/artifacts" -type f -name 'slow-unit-*' | wc -l) - slow_before))
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*$' || true)
  [[ -n $execs ]] || execs=$(grep -o '^#[0-9]*' "$work/log" | tail -1 | tr -d '#' || true)
  status=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<< "$status" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<< "$status" | grep -o '[0-9]*' || true)
  corp=$(grep -o 'corp: [0-9]*' <<< "$status" | grep -o '[0-9]*' || true)
  printf '{"target":"%s","seconds":%s,"execs":%s,"crashes":%s,"child_reports":%s,"slow_units":%s,"coverage":%s,"features":%s,"corpus":%s}\n' \
    "$t" "$SECS" "${execs:-0}" "$crashes" "$child_reports" "$slow_units" "${cov:-0}" "${ft:-0}" "${corp:-0}"
  total_execs=$((total_execs + ${execs:-0}))
  total_crashes=$((total_crashes + crashes))
done
printf '{"total_execs":%s,"total_crashes":%s,"targets":%s}\n' "$total_execs" "$total_crashes" "${#targets[@]}"
