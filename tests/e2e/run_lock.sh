#!/usr/bin/env bash
# The run-folder lock end to end (src/dist/run_lock.hpp): while a job runs in a folder (here held
# stopped with SIGSTOP, so it is certainly alive), a second job on that folder stops at once with
# one error line naming the holder (host, pid, command), whether the same job, another stage or
# another job (other --set), with one rank or two; after the holder is SIGKILLed, the next job
# takes over its lock with a warning and completes; a finished job leaves no lock behind.
# Usage: run_lock.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
RUN=$WORK/run
LOCK=$RUN/.superficial.lock
sets=(--set "run_dir=$RUN" "${TINY[@]}" --set "tasks=[gsm8k]" --set "evaluate.systems=[base]"
  --set "evaluate.max_examples=2" --set "evaluate.max_new_tokens=4")

"$CLI" evaluate jobs/tiny.yaml "${sets[@]}" > "$WORK/holder.log" 2>&1 &
holder=$!
for _ in $(seq 1 600); do
  [[ -e $LOCK ]] && break
  sleep 0.05
done
[[ -e $LOCK ]] || { echo "the first job never took the lock"; cat "$WORK/holder.log"; exit 1; }
kill -STOP "$holder"
host=$(hostname)

refused() {  # LOG EXPECTED_TEXT COMMAND...: the command fails at once with one line naming the holder
  local log=$1 want=$2 t0
  shift 2
  t0=$(date +%s)
  if "$@" > "$log" 2>&1; then echo "a second job ran while the folder was locked: $*"; cat "$log"; exit 1; fi
  (($(date +%s) - t0 < 30)) || { echo "the refusal took more than 30 s: $*"; exit 1; }
  [[ $(grep -c '^superficial: error: ' "$log") == 1 ]] || { echo "expected one error line:"; cat "$log"; exit 1; }
  grep -q "^superficial: error: $RUN: in use by $want (host $host, pid $holder, command 'evaluate jobs/tiny.yaml'" \
    "$log" || { echo "the error does not name the holder:"; cat "$log"; exit 1; }
  echo "refused: $(grep '^superficial: error: ' "$log" | sed "s|$WORK/||g")"
}
refused "$WORK/same.log" "the same job" "$CLI" evaluate jobs/tiny.yaml "${sets[@]}"
refused "$WORK/judge.log" "the same job" "$CLI" judge jobs/tiny.yaml "${sets[@]}"
refused "$WORK/other.log" "another job" "$CLI" evaluate jobs/tiny.yaml "${sets[@]}" --set evaluate.max_new_tokens=5
refused "$WORK/mpi.log" "the same job" mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml "${sets[@]}"
[[ -e $LOCK ]] || { echo "a refused job removed the holder's lock"; exit 1; }

# The holder dies without releasing: the next job takes its lock over and completes.
kill -9 "$holder"
wait "$holder" 2> /dev/null || true
[[ -e $LOCK ]] || { echo "SIGKILL left no lock to take over"; exit 1; }
"$CLI" evaluate jobs/tiny.yaml "${sets[@]}" > "$WORK/takeover.log" 2>&1 ||
  { echo "the job after the holder died failed:"; cat "$WORK/takeover.log"; exit 1; }
grep -q "removed the lock of a job that is gone (its process is gone): host $host, pid $holder" "$WORK/takeover.log" ||
  { echo "no takeover warning:"; cat "$WORK/takeover.log"; exit 1; }
[[ ! -e $LOCK ]] || { echo "a finished job left its lock behind"; exit 1; }
ls "$RUN"/.superficial.lock* > /dev/null 2>&1 && { echo "temporary lock files left behind"; ls -a "$RUN"; exit 1; }
echo "run-folder lock: refusals name the holder, a dead holder's lock is taken over, none is left behind"
