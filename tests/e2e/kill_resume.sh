#!/usr/bin/env bash
# SIGKILL of one rank at a random point of each stage, three times, then a resumed run: the study
# must end with the same results as an undisturbed one. The kill points (delay after the stage
# command starts, which rank) come from a seed, printed first; rerun with SUPERFICIAL_KILL_SEED=N
# to replay them. Stages: extract, train-head, evaluate, judge (mpirun -np 2) and reduce (one
# process). Compared with the undisturbed run: every dataset of logits.h5, results.h5 and
# judgments.h5 (h5dump, attributes aside: they hold creation times), the heads' tensor bytes and
# summary.json (creation times and the run folder's name aside).
# Usage: kill_resume.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
# shellcheck source=tests/e2e/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
SEED=${SUPERFICIAL_KILL_SEED:-$(((($(date +%s) * 7919) ^ $$) % 32768))}
echo "kill seed $SEED (replay: SUPERFICIAL_KILL_SEED=$SEED ctest -R e2e_kill_resume)"
RANDOM=$SEED
sets() {
  echo --set "run_dir=$WORK/$1" "${TINY[@]}" --set "tasks=[gsm8k,toxigen]" \
    --set "extract.max_examples=6" --set "extract.chunk_examples=1" --set "heads.epochs=2" \
    --set "evaluate.systems=[base,chat,base+hidden,base+bb]" --set "evaluate.max_examples=4" \
    --set "evaluate.chunk_examples=1" --set "evaluate.max_new_tokens=8" \
    --set "judges.toxigen_roberta.path=$SRC/tests/fixtures/judges/roberta" \
    --set "judges.toxigen_roberta.chunk_examples=1" --set "comparisons=[]"
}
launch() {  # STAGE RUN_LETTER
  if [[ $1 == reduce ]]; then
    "$CLI" reduce "$WORK/$2"
  else
    # shellcheck disable=SC2046
    mpirun --oversubscribe -np 2 "$CLI" "$1" jobs/tiny.yaml $(sets "$2")
  fi
}
STAGES=(extract train-head evaluate judge reduce)
outputs() {  # STAGE: what the stage writes in run B
  case $1 in
    extract) echo "$WORK/b/extract" ;;
    train-head) echo "$WORK/b/heads" ;;
    evaluate) echo "$WORK/b/evaluate" ;;
    judge) echo "$WORK/b/judge" ;;
    reduce) echo "$WORK/b/summary.json $WORK/b/summary.md $WORK/b/report.html" ;;
  esac
}

# A: undisturbed, each stage timed (milliseconds).
declare -A took
for s in "${STAGES[@]}"; do
  t0=$(date +%s%N)
  launch "$s" a > "$WORK/a-$s.log" 2>&1 || { echo "undisturbed $s failed"; cat "$WORK/a-$s.log"; exit 1; }
  took[$s]=$((($(date +%s%N) - t0) / 1000000))
done

# B: per stage, three runs killed at seeded points, then one to the end.
for s in "${STAGES[@]}"; do
  kills=0 tries=0
  while ((kills < 3)); do
    tries=$((tries + 1))
    ((tries <= 10)) || { echo "$s: could not kill a rank while the stage ran"; exit 1; }
    delay_ms=$((RANDOM * took[$s] * 9 / 10 / 32768))
    pick=$((RANDOM % 2))
    log=$WORK/b-$s-$tries.log
    launch "$s" b > "$log" 2>&1 &
    launcher=$!
    sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
    if [[ $s == reduce ]]; then
      victims=$(pgrep -f "^$CLI reduce $WORK/b\$" || true)
    else
      victims=$(pgrep -f "^$CLI $s jobs/tiny.yaml --set run_dir=$WORK/b" || true)
    fi
    mapfile -t ranks <<< "$victims"
    if [[ -z ${ranks[0]:-} ]]; then
      wait "$launcher" || true
      echo "$s try $tries: the stage ended before ${delay_ms} ms; its outputs removed, another point"
      # shellcheck disable=SC2046
      rm -rf $(outputs "$s")
      continue
    fi
    victim=${ranks[$((pick % ${#ranks[@]}))]}
    kill -9 "$victim" 2> /dev/null || true
    if wait "$launcher"; then
      echo "$s try $tries: the stage ended before the kill at ${delay_ms} ms; its outputs removed, another point"
      # shellcheck disable=SC2046
      rm -rf $(outputs "$s")
      continue
    fi
    kills=$((kills + 1))
    echo "$s kill $kills: rank $((pick % ${#ranks[@]})) of ${#ranks[@]} (pid $victim) SIGKILLed ${delay_ms} ms after" \
      "start (undisturbed stage: ${took[$s]} ms)"
  done
  launch "$s" b > "$WORK/b-$s-resume.log" 2>&1 || { echo "$s: resumed run failed"; cat "$WORK/b-$s-resume.log"; exit 1; }
done

same() {  # WHAT FILE_A FILE_B
  cmp -s "$2" "$3" || { echo "$1 differs between the undisturbed and the killed-and-resumed run"; diff "$2" "$3" | head; exit 1; }
}
for f in extract/tiny-base__tiny-chat/logits.h5 evaluate/results.h5 judge/judgments.h5; do
  h5dump --onlyattr=0 "$WORK/a/$f" | tail -n +2 > "$WORK/a.dump"
  h5dump --onlyattr=0 "$WORK/b/$f" | tail -n +2 > "$WORK/b.dump"
  same "$f" "$WORK/a.dump" "$WORK/b.dump"
done
tensors() {  # the bytes after a safetensors header (its metadata names the dataset's creation time)
  local n
  n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1" | sha256sum > "$2"
}
for h in hidden bb; do
  tensors "$WORK/a/heads/$h.safetensors" "$WORK/a.sum"
  tensors "$WORK/b/heads/$h.safetensors" "$WORK/b.sum"
  same "heads/$h.safetensors" "$WORK/a.sum" "$WORK/b.sum"
done
norm() { sed -e "s|$WORK/[ab]|RUN|g" -e '/"created"/d' -e '/"results_created"/d' "$1"; }
norm "$WORK/a/summary.json" > "$WORK/a.summary"
norm "$WORK/b/summary.json" > "$WORK/b.summary"
same summary.json "$WORK/a.summary" "$WORK/b.summary"
echo "kill and resume (seed $SEED): 3 SIGKILLs in each of ${STAGES[*]}; identical results"
