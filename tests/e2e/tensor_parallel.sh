#!/usr/bin/env bash
# Tensor parallelism end to end: extract, evaluate and judge of the tiny fp32 pair (jobs/tiny.yaml,
# every kind of system: plain, hidden head, bb head, proxy-tuning, in-context prefix; toxigen judged
# by the golden fixture classifier) on 2 ranks, once with parallel.tensor = 1 (two groups of one
# rank) and once with parallel.tensor = 2 (one group holding the models split over its two ranks).
# Every dataset of logits.h5, results.h5 and judgments.h5 must be the same: integer and text
# datasets identical in h5dump, float datasets within a tolerance (h5diff), since the split models
# sum their partial products in another order (max |Δlogit| of the golden tests ~4e-6): float32 and
# float64 (logits, log-probs, scores) within 1e-4; float16 (base hidden states) within 4e-3, one
# float16 step at magnitudes below 4 (a value on a rounding boundary may round the other way).
# Usage: tensor_parallel.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
sets() {
  echo --set "run_dir=$WORK/t$1" "${TINY[@]}" --set "parallel.tensor=$1"
}
# T = 1: extract, train the heads, evaluate every system.
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" extract jobs/tiny.yaml $(sets 1) > "$WORK/extract1.log" 2>&1
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" train-head jobs/tiny.yaml $(sets 1) > "$WORK/heads1.log" 2>&1
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets 1) > "$WORK/evaluate1.log" 2>&1
# T = 2: extract; evaluate with the same heads (copied, so that only the models' layout differs).
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" extract jobs/tiny.yaml $(sets 2) > "$WORK/extract2.log" 2>&1
cp -r "$WORK/t1/heads" "$WORK/t2/heads"
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets 2) > "$WORK/evaluate2.log" 2>&1
# The judge stage on each run's answers (toxigen by the golden fixture classifier).
for t in 1 2; do
  # shellcheck disable=SC2046
  mpirun --oversubscribe -np 2 "$CLI" judge jobs/tiny.yaml $(sets $t) \
    --set "judges.toxigen_roberta.path=$SRC/tests/fixtures/judges/roberta" \
    --set "judges.toxigen_roberta.chunk_examples=1" > "$WORK/judge$t.log" 2>&1
done

exact=0 close=0
compare() {  # compare FILE (relative to the run folder)
  local a=$WORK/t1/$1 b=$WORK/t2/$1
  "$CLI" validate "$b" > /dev/null
  local datasets
  datasets=$(h5ls -r "$a" | awk '$2 == "Dataset" {print $1}')
  [[ -n $datasets ]] || { echo "$a: no datasets"; exit 1; }
  for d in $datasets; do
    h5dump -d "$d" "$a" | tail -n +2 > "$WORK/a.dump"
    h5dump -d "$d" "$b" | tail -n +2 > "$WORK/b.dump"
    if cmp -s "$WORK/a.dump" "$WORK/b.dump"; then
      exact=$((exact + 1))
    elif grep -Eq 'H5T_IEEE_F(32|64)' "$WORK/a.dump" && h5diff -d 1e-4 "$a" "$b" "$d" "$d" > "$WORK/diff.txt" 2>&1; then
      close=$((close + 1))
    elif grep -q '16-bit precision' "$WORK/a.dump" && h5diff -d 4e-3 "$a" "$b" "$d" "$d" > "$WORK/diff.txt" 2>&1; then
      close=$((close + 1))
    else
      echo "$1 $d: T = 2 differs from T = 1"
      diff "$WORK/a.dump" "$WORK/b.dump" | head -20
      head -20 "$WORK/diff.txt" 2> /dev/null || true
      exit 1
    fi
  done
}
compare extract/tiny-base__tiny-chat/logits.h5
compare evaluate/results.h5
compare judge/judgments.h5
echo "tensor parallel T=2 vs T=1: $exact datasets identical in h5dump, $close float datasets within tolerance"
