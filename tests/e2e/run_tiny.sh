#!/usr/bin/env bash
# End-to-end: the whole study (jobs/tiny.yaml) on a tiny random pair under mpirun -np 2, then every
# HDF5 output through `superficial validate`, summary.json through its schema, and a second run
# that must skip every stage (resume).
# Usage: run_tiny.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
SETS=(--set "run_dir=$WORK/run" "${TINY[@]}")
mpirun --oversubscribe -np 2 "$CLI" run jobs/tiny.yaml "${SETS[@]}" 2>&1 | tee "$WORK/run1.log"
for f in $(find "$WORK/run" -name '*.h5' | sort); do
  "$CLI" validate "$f"
done
"$CLI" reduce --check "$WORK/run"
for f in summary.json summary.md report.html job.resolved.yaml provenance.json; do
  test -s "$WORK/run/$f" || { echo "missing $WORK/run/$f"; exit 1; }
done
grep -q "<svg" "$WORK/run/report.html"
# summary.json lists the comparison with a portion per task metric and listed system.
python3 - "$WORK/run/summary.json" << 'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = {x["name"]: x for x in s["comparisons"]}["tiny"]
assert (c["base"], c["aligned"]) == ("base", "chat"), c
tasks = {r["task"] for r in c["rows"]}
assert {"gsm8k", "advbench", "truthfulqa"} <= tasks, tasks
for r in c["rows"]:
    assert [p["system"] for p in r["portions"]] == ["base+hidden", "base+bb", "base-proxy", "base-icl"], r
assert {k["head"] for k in s["kl"]} == {"hidden", "bb"}, s["kl"]
# KL curves use the heads' held-out examples only: 3 of the 12 extracted (val_fraction 0.25).
assert all(k["validation_examples"] == 3 for k in s["kl"]), s["kl"]
assert {x["name"] for x in s["systems"]} == {"base", "chat", "base+hidden", "base+bb", "base-proxy", "base-icl"}
print("summary.json: comparison tiny with", len(c["rows"]), "task metrics")
PY
mpirun --oversubscribe -np 2 "$CLI" run jobs/tiny.yaml "${SETS[@]}" 2>&1 | tee "$WORK/run2.log"
grep -q "evaluate: .* is complete, skipped" "$WORK/run2.log"
grep -q "extract tiny-base__tiny-chat: .* is complete, skipped" "$WORK/run2.log"
grep -q "head 'bb': .* is complete, skipped" "$WORK/run2.log"
echo "e2e tiny run: OK"
