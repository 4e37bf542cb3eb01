#!/usr/bin/env bash
# `superficial evaluate` survives SIGKILL of its ranks: an uninterrupted run (A) and a run killed
# after some work units were written, then started again (B), must produce the same results.h5
# datasets (answers, scores, token-level logits), with B reporting the units it resumed.
# Usage: eval_resume.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
sets() {
  echo --set "run_dir=$WORK/$1" "${TINY[@]}" --set "evaluate.systems=[base,chat]" \
    --set "evaluate.max_examples=12" --set "evaluate.chunk_examples=1" --set "evaluate.batch_size=1" \
    --set "evaluate.max_new_tokens=16"
}
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets a) > "$WORK/a.log" 2>&1

# B: every rank dies by SIGKILL at its 4th unit commit (the fault seam, src/core/fault.hpp: a fixed
# point, where a kill from outside raced the run on a fast machine), then the same command again.
chunks=$WORK/b/evaluate/chunks
# shellcheck disable=SC2046
if SUPERFICIAL_FAULT=rename:4:KILL:/evaluate/chunks/ mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml \
  $(sets b) > "$WORK/b1.log" 2>&1; then
  echo "the killed run exited 0"
  exit 1
fi
test ! -e "$WORK/b/evaluate/results.h5" || { echo "results.h5 presented after a killed run"; exit 1; }
done_units=$(find "$chunks" -name 'unit-*.h5' | wc -l)
echo "killed both ranks with $done_units unit files written"

# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets b) > "$WORK/b2.log" 2>&1
grep -q "evaluate: resuming, [1-9][0-9]* of [0-9]* units already done" "$WORK/b2.log" ||
  { echo "second run did not resume"; cat "$WORK/b2.log"; exit 1; }
"$CLI" validate "$WORK/b/evaluate/results.h5"
for d in /examples/task /examples/system /examples/example_id /examples/answer /examples/extracted \
  /scores/row /scores/metric /scores/value /tokens/token_id /tokens/topk_ids /tokens/topk_logits \
  /choices/logprob; do
  h5dump -d "$d" "$WORK/a/evaluate/results.h5" | tail -n +2 > "$WORK/a.dump"
  h5dump -d "$d" "$WORK/b/evaluate/results.h5" | tail -n +2 > "$WORK/b.dump"
  cmp -s "$WORK/a.dump" "$WORK/b.dump" || { echo "$d differs between the uninterrupted and the resumed run"; exit 1; }
done
echo "evaluate resume after SIGKILL: identical results; $(grep -o 'resuming, .*' "$WORK/b2.log")"
