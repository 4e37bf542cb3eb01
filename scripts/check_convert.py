#!/usr/bin/env python3
"""Dev-time check of `superficial convert`: the folder it writes loads in transformers and gives the
logits transformers' own GGUF loader gives for the GGUF file.

  superficial convert MODEL.gguf --out DIR       (run here, float32)
  A = AutoModelForCausalLM.from_pretrained(DIR)                                  (the folder)
  B = AutoModelForCausalLM.from_pretrained(dirname(MODEL), gguf_file=basename)   (the GGUF)
  prints max |logit_A - logit_B| over a few texts (fp32, eager attention), and whether the
  folder's tokenizer (AutoTokenizer on DIR) gives the ids of tokenizer.json (if given).
Usage: python3 scripts/check_convert.py --cli build/src/superficial --gguf M.gguf [--tokenizer tokenizer.json]
"""
import argparse
import os
import subprocess
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXTS = [
    "The capital of France is Paris. It is famous for the Eiffel Tower.",
    "<|im_start|>user\nWhat is 12 times 7?<|im_end|>\n<|im_start|>assistant\n12 times 7 is 84.<|im_end|>\n",
    "def add(a, b):\n    return a + b\n",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokenizer", help="the model's own tokenizer.json, to compare ids with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hf")
        subprocess.run([args.cli, "convert", args.gguf, "--out", out], check=True)
        folder = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        gguf = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                                    gguf_file=os.path.basename(args.gguf), dtype=torch.float32,
                                                    attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(out)
        worst = 0.0
        with torch.no_grad():
            for text in TEXTS:
                ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
                diff = float((folder(ids).logits - gguf(ids).logits).abs().max())
                worst = max(worst, diff)
                print(f"{len(ids[0])} tokens: max |dlogit| {diff:.3g}")
        print(f"max |dlogit| (converted folder vs transformers' GGUF loader): {worst:.3g}")
        if args.tokenizer:
            from tokenizers import Tokenizer
            ref = Tokenizer.from_file(args.tokenizer)
            same = all(tok.encode(t, add_special_tokens=False) == ref.encode(t, add_special_tokens=False).ids
                       for t in TEXTS)
            print(f"folder tokenizer ids equal {args.tokenizer}: {same}")


if __name__ == "__main__":
    main()
