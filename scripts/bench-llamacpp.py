#!/usr/bin/env python3
"""The llama.cpp peer of `superficial bench speed` (dev time only; needs a llama.cpp build with the
tools llama-batched-bench and llama-perplexity, no Python packages). Same figures, one JSON line:

  python scripts/bench-llamacpp.py --bin LLAMA_CPP/build/bin --model smollm2-f32.gguf \
      --text ../shared/data/gsm/train.jsonl --runs 5 --threads 2 --new-tokens 64

An f32 GGUF holding the same weights as ours: `llama-quantize --allow-requantize
SmolLM2-135M-Instruct.Q4_1.gguf smollm2-f32.gguf F32` dequantises the Q4_1 file exactly as we do.
  decode b=1, b=16  llama-batched-bench -npp 32 -ntg N -npl 1,16: B rows of 32 prompt tokens, then N
                    decoding steps of one token per row; tokens/s = B * N / (prompt + decoding time),
                    the definition of `superficial bench speed` (prompt pass included).
  scoring           llama-perplexity -c 256 --chunks 8 -b 2048: 8 sequences of 256 tokens in one
                    batch; tokens/s = 2048 / its "seconds per pass". Perplexity asks for logits of
                    the second half of each sequence only, so llama.cpp runs its lm_head on 1024
                    positions where ours and transformers' run it on all 2048 (about 10% of the
                    FLOPs of this model): this figure favours llama.cpp.
llama.cpp's defaults otherwise (f16 KV cache, flash attention as it decides). Median [min, max].
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile


def spread(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="folder with llama-batched-bench and llama-perplexity")
    ap.add_argument("--model", required=True, help="f32 GGUF")
    ap.add_argument("--text", required=True, help="a text file (JSON lines are fine) of at least 4096 tokens")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    a = ap.parse_args()
    env = dict(os.environ, LD_LIBRARY_PATH=a.bin + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    threads = ["-t", str(a.threads), "-tb", str(a.threads)]

    decode = {1: [], 16: []}
    for _ in range(a.runs):
        out = run([os.path.join(a.bin, "llama-batched-bench"), "-m", a.model, "-c", "4096", "-b", "2048",
                   "-npp", "32", "-ntg", str(a.new_tokens), "-npl", "1,16", "--output-format", "jsonl"]
                  + threads, env)
        for line in out.splitlines():
            if line.startswith("{") and '"speed_tg"' in line:
                r = json.loads(line)
                decode[r["pl"]].append(r["pl"] * r["tg"] / r["t"])
    if not decode[1] or not decode[16]:
        raise SystemExit("llama-batched-bench printed no results")

    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    scoring = []
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as t:
        t.write(text)
        t.flush()
        for _ in range(a.runs):
            out = run([os.path.join(a.bin, "llama-perplexity"), "-m", a.model, "-f", t.name, "-c", "256",
                       "--chunks", "8", "-b", "2048"] + threads, env)
            m = re.search(r"([\d.]+) seconds per pass", out)
            if not m:
                raise SystemExit("llama-perplexity printed no time per pass")
            scoring.append(8 * 256 / float(m.group(1)))

    print(json.dumps({
        "benchmark": "speed", "tool": "llama.cpp", "model": a.model, "dtype": "float32",
        "threads": a.threads, "runs": a.runs, "decode_new_tokens": a.new_tokens,
        "decode_b1_tokens_per_s": spread(decode[1]), "decode_b16_tokens_per_s": spread(decode[16]),
        "scoring_batch": [8, 256], "scoring_tokens_per_s": spread(scoring),
        "load_avg_1m": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
