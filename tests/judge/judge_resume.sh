#!/usr/bin/env bash
# `superficial judge` on the answers of a tiny random pair (toxigen, truthfulqa-gen), with the golden
# fixture judges (tests/fixtures/judges: a RoBERTa classifier, a llama label_prob judge):
#  - an uninterrupted run (A) and a run whose ranks are SIGKILLed after some units, then rerun (B),
#    write the same judgments (every dataset and the judges attribute, as h5dump prints them);
#  - both files pass `superficial validate`;
#  - binding one more judge to a finished run only runs that judge (the answers are untouched);
#  - a misconfigured judge fails with one error line before any unit is computed.
# Usage: judge_resume.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
FIX=$SRC/tests/fixtures/judges
printf '%s\n' '{"question": "Is the sky blue?", "answer": "Yes", "label": " yes"}' \
  '{"question": "Is fire cold?", "answer": "Yes, very.", "label": " no"}' > "$WORK/heldout.jsonl"
sets() {
  echo --set "run_dir=$WORK/$1" "${TINY[@]}" --set "tasks=[toxigen,truthfulqa-gen]" \
    --set "evaluate.systems=[base,chat]" --set "evaluate.max_examples=30" --set "evaluate.chunk_examples=10" \
    --set "evaluate.batch_size=10" --set "evaluate.max_new_tokens=8" \
    --set "judges.toxigen_roberta.path=$FIX/roberta" --set "judges.toxigen_roberta.chunk_examples=1" \
    --set "judges.truth.path=$FIX/llama" --set "judges.truth.template=plain" \
    --set "judges.truth.chunk_examples=1" --set "judges.truth.heldout=$WORK/heldout.jsonl"
}
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets a) > "$WORK/eval.log" 2>&1
mkdir -p "$WORK/b"
cp -r "$WORK/a/evaluate" "$WORK/b/evaluate"

# A: uninterrupted.
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" judge jobs/tiny.yaml $(sets a) > "$WORK/a.log" 2>&1
units_a=$(find "$WORK/a/judge/units" -name '*.h5' | wc -l)

# B: every rank dies by SIGKILL at its 5th unit commit (the fault seam, src/core/fault.hpp: a fixed
# point, where a kill from outside raced units that take milliseconds), then the same command again.
# shellcheck disable=SC2046
if SUPERFICIAL_FAULT=rename:5:KILL:/judge/units/ mpirun --oversubscribe -np 2 "$CLI" judge jobs/tiny.yaml \
  $(sets b) > "$WORK/b1.log" 2>&1; then
  echo "the killed run exited 0"
  exit 1
fi
test ! -e "$WORK/b/judge/judgments.h5" || { echo "judgments.h5 presented after a killed run"; exit 1; }
killed_at=$(find "$WORK/b/judge/units" -name '*.h5' | wc -l)
((killed_at < units_a)) || { echo "the killed run had finished all $units_a units"; exit 1; }
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" judge jobs/tiny.yaml $(sets b) > "$WORK/b2.log" 2>&1
grep -q "judge: 2 judge(s), $units_a units ([1-9][0-9]* already done)" "$WORK/b2.log" ||
  { echo "second run did not resume"; cat "$WORK/b2.log"; exit 1; }
"$CLI" validate "$WORK/a/judge/judgments.h5" "$WORK/b/judge/judgments.h5"
for d in task system example_id results_row judge metric label score value text input label_offset num_labels; do
  set -- "/verdicts/$d"
  h5dump -d "$1" "$WORK/a/judge/judgments.h5" | tail -n +2 > "$WORK/a.dump"
  h5dump -d "$1" "$WORK/b/judge/judgments.h5" | tail -n +2 > "$WORK/b.dump"
  cmp -s "$WORK/a.dump" "$WORK/b.dump" || { echo "$1 differs between the uninterrupted and the resumed run"; exit 1; }
done
for d in /labels/name /labels/raw /labels/prob /heldout/judge /heldout/item /heldout/label /heldout/score; do
  h5dump -d "$d" "$WORK/a/judge/judgments.h5" | tail -n +2 > "$WORK/a.dump"
  h5dump -d "$d" "$WORK/b/judge/judgments.h5" | tail -n +2 > "$WORK/b.dump"
  cmp -s "$WORK/a.dump" "$WORK/b.dump" || { echo "$d differs between the uninterrupted and the resumed run"; exit 1; }
done
h5dump -a /judges "$WORK/a/judge/judgments.h5" | tail -n +2 > "$WORK/a.dump"
h5dump -a /judges "$WORK/b/judge/judgments.h5" | tail -n +2 > "$WORK/b.dump"
cmp -s "$WORK/a.dump" "$WORK/b.dump" || { echo "the judges attribute differs"; exit 1; }
echo "judge resume after SIGKILL ($killed_at of $units_a units written): identical judgments"

# One more judge on the finished run A: only its units run; the answers are not touched.
answers=$(sha256sum "$WORK/a/evaluate/results.h5")
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" judge jobs/tiny.yaml $(sets a) --set "judges.info.path=$FIX/llama" \
  --set "judges.info.template=plain" > "$WORK/a2.log" 2>&1
grep -q "judge: 3 judge(s), [0-9]* units ($units_a already done)" "$WORK/a2.log" ||
  { echo "adding a judge did not reuse the other judges' units"; cat "$WORK/a2.log"; exit 1; }
[[ $(sha256sum "$WORK/a/evaluate/results.h5") == "$answers" ]] || { echo "results.h5 changed"; exit 1; }
h5dump -d /verdicts/judge "$WORK/a/judge/judgments.h5" | grep -q '"truth&info"' ||
  { echo "no truthful_informative (all_of) rows"; exit 1; }
"$CLI" validate "$WORK/a/judge/judgments.h5"

# A misconfigured judge (no template for an LM judge): one error line, no unit computed.
before=$(find "$WORK/a/judge/units" -name '*.h5' | wc -l)
# shellcheck disable=SC2046
if "$CLI" judge jobs/tiny.yaml $(sets a) --set "judges.info.path=$FIX/llama" > "$WORK/bad.log" 2>&1; then
  echo "a judge without a template was accepted"
  exit 1
fi
[[ $(grep -c "error" "$WORK/bad.log") == 1 ]] || { echo "expected one error line:"; cat "$WORK/bad.log"; exit 1; }
grep -q "judges.info: judge 'info'.*template: required" "$WORK/bad.log" || { cat "$WORK/bad.log"; exit 1; }
[[ $(find "$WORK/a/judge/units" -name '*.h5' | wc -l) == "$before" ]] || { echo "units were computed"; exit 1; }
echo "judge e2e: OK"
