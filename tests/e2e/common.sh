# shellcheck shell=bash
# The preamble of every end-to-end script, sourced with the script's arguments:
#   source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
# It sets CLI SRC DATA WORK from SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR, empties WORK,
# runs from SRC with the environment of an MPI run as root with one thread per rank (and no injected
# faults from the caller's shell), and writes the tiny random pair to $WORK/models
# (scripts/make-tiny-pair.sh: base and aligned). TINY holds the job overrides every script passes:
# the data folder and the tiny pair's two models (the run folder is each script's own).
set -euo pipefail
CLI=$1 SRC=$2 DATA=$3 WORK=$4
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$SRC"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export SUPERFICIAL_BIN=$CLI SUPERFICIAL_SCHEMA_DIR=$SRC/results-schema
unset SUPERFICIAL_FAULT
bash scripts/make-tiny-pair.sh "$WORK/models" > /dev/null
# shellcheck disable=SC2034  # TINY: for the sourcing script
TINY=(--set "data_root=$DATA" --set "models.tiny-base.path=$WORK/models/base"
  --set "models.tiny-chat.path=$WORK/models/aligned")
