#!/usr/bin/env python3
"""The transformers peer of `superficial bench speed` (dev time only; needs torch + transformers, e.g.
the venv of scripts/make-goldens.sh). Same figures, same prompts, same weights, one JSON line:

  python scripts/bench-peers.py --model runs/real/smollm2.gguf --runs 9 --threads 2

A .gguf file is read by transformers' own GGUF loader (dequantised to float32), a folder by
from_pretrained. Figures: teacher-forced scoring of 8 x 256 tokens (logits at every position),
greedy decoding of 64 new tokens at batch 1 and 16 (EOS ignored, so every row has that length),
peak RSS after the batch-1 decodes; each the median [min, max] of --runs repetitions.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def spread(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def prompts(rows, vocab):
    return [[(i * 131 + t * 17 + 1000) % vocab for t in range(32)] for i in range(rows)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)
    torch.set_num_threads(a.threads)
    if a.model.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(a.model)),
                                                     gguf_file=os.path.basename(a.model), torch_dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=dtype)
    model.eval()
    V = model.config.vocab_size
    out = {"benchmark": "speed", "tool": "transformers " + transformers.__version__ + " (torch " + torch.__version__ +
           ", attn " + str(model.config._attn_implementation) + ")", "model": a.model, "dtype": a.dtype,
           "threads": torch.get_num_threads(), "runs": a.runs, "decode_new_tokens": a.new_tokens}

    def decode(batch):
        ids = torch.tensor(prompts(batch, V))
        mask = torch.ones_like(ids)
        kw = dict(attention_mask=mask, do_sample=False, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                  pad_token_id=0)
        with torch.inference_mode():
            model.generate(ids, **kw)  # warm-up
            tps = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                model.generate(ids, **kw)
                tps.append(batch * a.new_tokens / (time.perf_counter() - t0))
        return spread(tps)

    out["decode_b1_tokens_per_s"] = decode(1)
    out["peak_rss_decode_b1_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["decode_b16_tokens_per_s"] = decode(16)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (8, 256), generator=g)
    with torch.inference_mode():
        model(ids)  # warm-up
        tps = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            model(ids).logits
            tps.append(8 * 256 / (time.perf_counter() - t0))
    out["scoring_batch"] = [8, 256]
    out["scoring_tokens_per_s"] = spread(tps)
    out["load_avg_1m"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
