#!/usr/bin/env bash
# `superficial evaluate` survives SIGKILL of one rank: an uninterrupted run (A) and a run killed
# after some work units were written, then started again (B), must produce the same results.h5
# datasets (answers, scores, token-level logits), with B reporting the units it resumed.
# Usage: eval_resume.sh SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR
set -euo pipefail
CLI=$1 SRC=$2 DATA=$3 WORK=$4
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$SRC"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export SUPERFICIAL_BIN=$CLI SUPERFICIAL_SCHEMA_DIR=$SRC/results-schema
bash scripts/make-tiny-pair.sh "$WORK/models" > /dev/null
sets() {
  echo --set "run_dir=$WORK/$1" --set "data_root=$DATA" --set "models.tiny-base.path=$WORK/models/base" \
    --set "models.tiny-chat.path=$WORK/models/aligned" --set "evaluate.systems=[base,chat]" \
    --set "evaluate.max_examples=12" --set "evaluate.chunk_examples=1" --set "evaluate.batch_size=1" \
    --set "evaluate.max_new_tokens=16"
}
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets a) > "$WORK/a.log" 2>&1

# B: kill rank 1 with SIGKILL once at least 6 unit files exist.
# shellcheck disable=SC2046
mpirun --oversubscribe -np 2 "$CLI" evaluate jobs/tiny.yaml $(sets b) > "$WORK/b1.log" 2>&1 &
launcher=$!
chunks=$WORK/b/evaluate/chunks
for _ in $(seq 1 600); do
  n=$( (find "$chunks" -name 'unit-*.h5' 2> /dev/null || true) | wc -l)
  ((n >= 6)) && break
  sleep 0.1
done
# A rank, not the launcher: the rank's command line starts with the binary.
victim=$(pgrep -f "^$CLI evaluate jobs/tiny.yaml --set run_dir=$WORK/b" | tail -1 || true)
[[ -n $victim ]] || { echo "no rank left to kill: the run ended before 6 units were written"; exit 1; }
kill -9 "$victim"
wait "$launcher" && { echo "the killed run exited 0"; exit 1; }
test ! -e "$WORK/b/evaluate/results.h5" || { echo "results.h5 presented after a killed run"; exit 1; }
done_units=$(find "$chunks" -name 'unit-*.h5' | wc -l)
echo "killed rank pid $victim with $done_units unit files written"

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
