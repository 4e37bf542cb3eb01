#!/usr/bin/env bash
# The extraction stage against the reference code's loop, alternated in one session: `superficial
# bench extract jobs/bench-extract-smollm2.yaml` and scripts/reference-extract.py (a transformers
# re-implementation of the reference's lock-step batch-1 loop) on the same prompt ids, which our
# extract stage writes first. Prints each run's JSON line, then one summary line per pair: both wall
# times and tokens/s, ours/reference by wall time and by tokens per second, and (float32) the most
# ours/reference could be on this machine: the reference's time over ours at its floor (every matrix
# product of the stage at the float32 GEMM peak measured in the same run, nothing else costing
# time; `bench extract`'s floor_s). The machine's speed drifts by 10-25% over an hour, so only runs
# alternated in one session are compared.
#
#   bash scripts/bench-extract-vs-reference.sh [--dtype bfloat16|float32] [--pairs N]
#
# Dev time only: needs the real pair (bash scripts/demo.sh --real makes runs/real/models/smollm2-safe;
# scripts/fetch-models.sh the GGUF) and a Python with torch, transformers, gguf and h5py (PYTHON,
# default /work/venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

dtype=bfloat16
pairs=2
while [ $# -gt 0 ]; do
  case "$1" in
    --dtype) dtype="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    *) echo "bench-extract-vs-reference.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$dtype" in float32|bfloat16) ;; *) echo "bench-extract-vs-reference.sh: --dtype float32 or bfloat16" >&2; exit 2 ;; esac

py="${PYTHON:-}"
[ -n "$py" ] || { [ -x /work/venv/bin/python ] && py=/work/venv/bin/python || py=python3; }
bin=build/src/superficial
job=jobs/bench-extract-smollm2.yaml
for need in "$bin" runs/real/smollm2.gguf runs/real/models/smollm2-safe/config.json; do
  [ -e "$need" ] || { echo "bench-extract-vs-reference.sh: $need is missing (build, scripts/fetch-models.sh, scripts/demo.sh --real)" >&2; exit 1; }
done

sets=(--set "models.smollm2.dtype=$dtype" --set "models.smollm2-safe.dtype=$dtype")
prompts_dir="$(mktemp -d)"
trap 'rm -rf "$prompts_dir"' EXIT
"$bin" extract "$job" "${sets[@]}" --set "run_dir=$prompts_dir" >/dev/null 2>&1
h5="$prompts_dir/extract/smollm2__smollm2-safe/logits.h5"

for i in $(seq 1 "$pairs"); do
  ours="$("$bin" bench extract "$job" "${sets[@]}" 2>/dev/null | tail -1)"
  ref="$("$py" scripts/reference-extract.py --aligned runs/real/models/smollm2-safe --base runs/real/smollm2.gguf \
    --prompts-from "$h5" --max-new-tokens 64 --top-k 100 --out "$prompts_dir/reference" --dtype "$dtype" 2>/dev/null |
    tail -1)"
  echo "$ours"
  echo "$ref"
  "$py" - "$ours" "$ref" "$i" "$dtype" "$(date +%T)" <<'EOF'
import json, sys
ours, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"pair": int(sys.argv[3]), "dtype": sys.argv[4], "time": sys.argv[5],
                  "ours_tokens": ours["tokens"], "ours_wall_s": round(ours["wall_s"], 3),
                  "ours_tokens_per_s": round(ours["tokens_per_s"], 1),
                  "reference_tokens": ref["tokens"], "reference_wall_s": round(ref["wall_s"], 2),
                  "reference_tokens_per_s": round(ref["tokens_per_s"], 2),
                  "same_answers": ref["same_answers_as_ours"],
                  "ratio_wall": round(ref["wall_s"] / ours["wall_s"], 2),
                  "ratio_tokens_per_s": round(ours["tokens_per_s"] / ref["tokens_per_s"], 2),
                  "ours_floor_s": None if ours["floor_s"] is None else round(ours["floor_s"], 3),
                  "ratio_bound": None if ours["floor_s"] is None else round(ref["wall_s"] / ours["floor_s"], 2)}))
EOF
done
