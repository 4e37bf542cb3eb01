#!/usr/bin/env bash
# jobs/tiny.yaml on `device: cuda`: every stage, every kind of head and system, then validate.
# Exit code 77 (skipped) where there is no GPU or the build has no CUDA.
# Usage: tiny_study.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
set -euo pipefail
CLI=$1
if ! "$CLI" --log-level warn cuda-info > /dev/null 2>&1; then
  echo "skipped: no GPU (or a build without SUPERFICIAL_WITH_CUDA)"
  exit 77
fi
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
"$CLI" run jobs/tiny.yaml --set device=cuda --set "run_dir=$WORK/run" "${TINY[@]}" \
  --set 'heads.variants=[{name: hidden, type: hidden}, {name: lowrank, type: hidden, rank: 4}, {name: bb, type: bb, k: 10, rank: 4}, {name: bbl, type: bb_linear, k: 10, rank: 4}, {name: bias, type: bias}]' \
  --set 'systems.base+lowrank={model: tiny-base, head: lowrank}' --set 'systems.base+bbl={model: tiny-base, head: bbl}' \
  --set 'systems.base+bias={model: tiny-base, head: bias}'
for f in $(find "$WORK/run" -name '*.h5' | sort); do "$CLI" validate "$f"; done
"$CLI" reduce --check "$WORK/run"
echo "cuda tiny study: OK"
