#!/usr/bin/env bash
# Trains the demo's judges (configs/demo/judges.yaml: one small decoder, bound by jobs/demo.yaml as
# the toxicity, truth and info judges) and measures each judge's accuracy on its held-out items
# (`superficial judge --heldout-only`: the held-out units are kept, so the study reuses them).
# Run from scripts/demo.sh before `superficial run jobs/demo.yaml`; a trained judge is not retrained.
# The CLI is $SUPERFICIAL_BIN, else build/src/superficial.
set -euo pipefail
cd "$(dirname "$0")/.."
SF=${SUPERFICIAL_BIN:-build/src/superficial}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MPIRUN=(mpirun --oversubscribe -np 2)
"${MPIRUN[@]}" "$SF" train configs/demo/judges.yaml
"${MPIRUN[@]}" "$SF" judge jobs/demo.yaml --heldout-only
