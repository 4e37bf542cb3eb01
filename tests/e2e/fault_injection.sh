#!/usr/bin/env bash
# Injected disk faults (SUPERFICIAL_FAULT, src/core/fault.hpp) during extract, evaluate and judge
# on a tiny random pair: every faulted run must
#   - fail with exactly one error line that names the file and the errno (ENOSPC or EIO),
#   - leave no partial file under a final name (every *.h5 present passes `superficial validate`),
# and a final run without faults must complete with datasets identical (h5dump, attributes aside)
# to those of an undisturbed run. Faults hit the first write of a shard, a write in the middle of
# one, fsyncs of files and of their folder (after the rename), renames, and the merged files.
# Usage: fault_injection.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
sets() {
  echo --set "run_dir=$WORK/$1" "${TINY[@]}" --set "tasks=[gsm8k,toxigen]" \
    --set "extract.max_examples=2" --set "extract.chunk_examples=1" --set "extract.max_new_tokens=6" \
    --set "evaluate.systems=[base,chat]" --set "evaluate.max_examples=3" --set "evaluate.chunk_examples=1" \
    --set "evaluate.max_new_tokens=6" --set "judges.toxigen_roberta.path=$SRC/tests/fixtures/judges/roberta" \
    --set "judges.toxigen_roberta.chunk_examples=1"
}
stage() {  # stage NAME RUN_LETTER: one process, so that fault counts are deterministic
  # shellcheck disable=SC2046
  mpirun --oversubscribe -np 1 "$CLI" "$1" jobs/tiny.yaml $(sets "$2")
}

# A: undisturbed.
for s in extract evaluate judge; do stage "$s" a > "$WORK/a-$s.log" 2>&1; done

# B: each stage under a series of faults, then once more without.
check_faulted_run() {  # LOG FAULT
  local log=$1 fault=$2 errors
  errors=$(grep -c '^superficial: error: ' "$log" || true)
  [[ $errors == 1 ]] || { echo "$fault: expected one error line, got $errors:"; cat "$log"; exit 1; }
  local errno=${fault#*:*:}
  errno=${errno%%:*}
  grep -qE "^superficial: error: $WORK/b/.*: .*\\($errno\\)\$" "$log" ||
    { echo "$fault: the error does not name a file of the run and $errno:"; cat "$log"; exit 1; }
  while IFS= read -r -d '' f; do
    "$CLI" validate "$f" > /dev/null || { echo "$fault: $f is under its final name but not whole"; exit 1; }
  done < <(find "$WORK/b" -name '*.h5' -print0)
  echo "$fault: $(grep '^superficial: error: ' "$log" | sed "s|$WORK/||g")"
}
run_faults() {  # STAGE FAULT...
  local s=$1 n=0
  shift
  for fault in "$@"; do
    n=$((n + 1))
    local log=$WORK/b-$s-$n.log
    if SUPERFICIAL_FAULT=$fault stage "$s" b > "$log" 2>&1; then
      echo "$s: the run with fault $fault did not fail:"
      cat "$log"
      exit 1
    fi
    check_faulted_run "$log" "$fault"
  done
  stage "$s" b > "$WORK/b-$s-clean.log" 2>&1 || { echo "$s: the run after the faults failed:"; cat "$WORK/b-$s-clean.log"; exit 1; }
}
run_faults extract write:1:ENOSPC:chunk-000000 write:9:EIO:chunk-000001 fsync:1:EIO:shards \
  fsync:2:ENOSPC:shards rename:1:ENOSPC:shards write:2:EIO:logits.h5 fsync:1:ENOSPC:logits.h5 \
  rename:1:EIO:logits.h5
run_faults evaluate write:1:ENOSPC:unit-000000 write:11:EIO:chunks fsync:1:EIO:chunks fsync:2:ENOSPC:chunks \
  rename:2:EIO:chunks write:5:ENOSPC:results.h5 rename:1:EIO:results.h5
run_faults judge write:1:ENOSPC:judge/units write:13:EIO:judge/units fsync:2:EIO:judge/units \
  rename:3:ENOSPC:judge/units write:3:EIO:judgments.h5 fsync:1:ENOSPC:judgments.h5 rename:1:EIO:judgments.h5

# The finished B equals A, dataset by dataset (attributes hold creation times).
for f in extract/tiny-base__tiny-chat/logits.h5 evaluate/results.h5 judge/judgments.h5; do
  h5dump --onlyattr=0 "$WORK/a/$f" | tail -n +2 > "$WORK/a.dump"
  h5dump --onlyattr=0 "$WORK/b/$f" | tail -n +2 > "$WORK/b.dump"
  cmp -s "$WORK/a.dump" "$WORK/b.dump" || { echo "$f differs between the undisturbed and the faulted run"; exit 1; }
done
"$CLI" validate "$WORK/b/extract/tiny-base__tiny-chat/logits.h5" "$WORK/b/evaluate/results.h5" \
  "$WORK/b/judge/judgments.h5" > /dev/null
echo "fault injection: every faulted run failed with one line naming the file and errno, left only whole files," \
  "and the reruns gave datasets identical to an undisturbed run (extract, evaluate, judge)"
