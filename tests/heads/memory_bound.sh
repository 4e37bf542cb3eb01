#!/usr/bin/env bash
# Head training holds at most heads.max_memory_mb of positions: with the same bound, a dataset 4×
# larger (160 MB, 20× the bound) must not raise the peak memory above the one of 40 MB by more than
# a few blocks' worth (it would grow by ~120 MB if the positions were all held).
# Usage: memory_bound.sh SUPERFICIAL_BINARY WORK_DIR
set -euo pipefail
CLI=$1 WORK=$2
rm -rf "$WORK"
mkdir -p "$WORK"
small=$("$CLI" --log-level warn bench train-head --dir "$WORK/s" --dataset-mb 40 --bound-mb 8)
large=$("$CLI" --log-level warn bench train-head --dir "$WORK/l" --dataset-mb 160 --bound-mb 8)
echo "$small"
echo "$large"
python3 - "$small" "$large" << 'PY'
import json, sys
s, l = (json.loads(a) for a in sys.argv[1:3])
assert l["dataset_mib"] >= 20 * l["bound_mib"], l
assert l["windows_per_epoch"] > 1, l
growth = l["peak_over_before_mib"] - s["peak_over_before_mib"]
assert growth < 20, f"peak memory grew by {growth:.1f} MiB for 120 MB more data under the same bound"
print(f"bounded: 40 MB -> {s['peak_over_before_mib']:.1f} MiB, 160 MB -> {l['peak_over_before_mib']:.1f} MiB over the start (bound 8 MiB)")
PY
