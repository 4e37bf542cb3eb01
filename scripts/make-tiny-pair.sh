#!/usr/bin/env bash
# Makes a tiny random base/aligned model pair for tests and demos: two 2-layer Llama-style models
# (hidden 64) with different seeds that share SmolLM2-135M-Instruct's real tokenizer from
# ../shared/models (its ChatML tokens let the aligned model use the chatml template; id 2 =
# <|im_end|> ends answers). The weights are random, so the outputs mean nothing.
#
# Usage: scripts/make-tiny-pair.sh OUT_DIR        writes OUT_DIR/base and OUT_DIR/aligned
# The CLI is $SUPERFICIAL_BIN, else build/src/superficial; the tokenizer $SUPERFICIAL_TINY_TOKENIZER.
set -euo pipefail
OUT=${1:?usage: make-tiny-pair.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SUPERFICIAL_BIN:-$ROOT/build/src/superficial}
TOKENIZER=${SUPERFICIAL_TINY_TOKENIZER:-$ROOT/../shared/models/HuggingFaceTB--SmolLM2-135M-Instruct/tokenizer.json}
for spec in base:1 aligned:2; do
  role=${spec%%:*}
  seed=${spec##*:}
  "$BIN" init-model --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --tie-embeddings \
    --vocab-from "$TOKENIZER" --bos 1 --eos 2 --seed "$seed" --out "$OUT/$role"
done
