# shellcheck shell=bash
# The preamble of every end-to-end script, sourced with the script's arguments:
#   source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh" "$@"
# It sets CLI SRC DATA WORK from SUPERFICIAL_BINARY SOURCE_DIR DATA_ROOT WORK_DIR, empties WORK,
# runs from SRC with the environment of an MPI run as root with one thread per rank (and no injected
# faults from the caller's shell), and writes the tiny random pair to $WORK/models
# (scripts/make-tiny-pair.sh: base and aligned).
set -euo pipefail
# shellcheck disable=SC2034  # DATA: for the sourcing script
CLI=$1 SRC=$2 DATA=$3 WORK=$4
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$SRC"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export SUPERFICIAL_BIN=$CLI SUPERFICIAL_SCHEMA_DIR=$SRC/results-schema
unset SUPERFICIAL_FAULT
bash scripts/make-tiny-pair.sh "$WORK/models" > /dev/null
