#!/usr/bin/env python3
"""A faithful transformers re-implementation of the reference code's extraction loop (dev time only),
the peer of `superficial bench extract`: VITA-Group/Superficial_Alignment eval/*/extract_logit.py with
modeling/dexperts.py's DExpertsLlamaExtract and eval/utils.py's generate_completions_extract_logits.
Batch 1; the aligned model (expert) and the base (anti-expert) decode in lock-step, each with its own
KV cache: at every step both models' full next-token logits and final hidden states are kept, the
aligned model's argmax is the next token of both; at the end the top-k (the reference: 500) of every
kept row is taken and everything is saved with torch.save, as the reference does.

  python scripts/reference-extract.py --aligned runs/real/models/smollm2-safe --base runs/real/smollm2.gguf \
      --prompts-from runs/real/bench/extract/smollm2__smollm2-safe/logits.h5 --max-new-tokens 64 --top-k 100 \
      --out /tmp/ref-extract

Prompts: the token ids `superficial extract` gave each model (read from its logits.h5, so both tools
answer exactly the same prompts); a row also ends at its task's stop strings (configs/tasks/<task>.yaml:
generation.stop and extract_stop, as the reference's stop sequences), at EOS or after --max-new-tokens.
Without --prompts-from: the first --examples AdvBench train goals in the reference's Alpaca layout, in
ChatML, for both models. Prints one JSON line: response tokens, wall seconds, tokens/s, and (with
--prompts-from) how many answers equal ours token for token.
"""
import argparse
import csv
import json
import os
import time

import h5py
import torch
import transformers
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(path, dtype):
    if path.endswith(".gguf"):
        d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
        return (AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=dtype),
                AutoTokenizer.from_pretrained(d, gguf_file=f))
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype), AutoTokenizer.from_pretrained(path)


def load_rows(a, tok):
    """Per example: the prompt ids of each model, stop strings, and our answer (ids) when read from our output."""
    if not a.prompts_from:
        with open(a.data) as f:
            goals = [row["goal"] for row in csv.DictReader(f)][: a.examples or 32]
        rows = []
        for goal in goals:
            prompt = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                      f"the request.\n\n### Instruction:\n{goal}\n\n### Response:")
            text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
            ids = tok(text, add_special_tokens=False).input_ids
            rows.append({"prompt": goal, "aligned_ids": ids, "base_ids": ids, "stop": [], "ours": None})
        return rows
    f = h5py.File(a.prompts_from, "r")
    e, p, t = f["examples"], f["prompts"], f["tokens"]
    stops = {}
    rows = []
    for i in range(e["item"].shape[0]):
        task = e["task"][i].decode()
        if task not in stops:
            with open(os.path.join(a.tasks_dir, task + ".yaml")) as y:
                gen = yaml.safe_load(y).get("generation", {})
            stops[task] = list(gen.get("stop", [])) + list(gen.get("extract_stop", []))

        def ids(name):
            o, n = int(e[name + "_prompt_offset"][i]), int(e[name + "_prompt_length"][i])
            return [int(x) for x in p[name + "_ids"][o:o + n]]

        o, n = int(e["token_offset"][i]), int(e["num_tokens"][i])
        rows.append({"prompt": e["prompt"][i].decode(), "aligned_ids": ids("aligned"), "base_ids": ids("base"),
                     "stop": stops[task], "ours": [int(x) for x in t["token_id"][o:o + n]]})
    return rows[: a.examples] if a.examples else rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aligned", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", default="../shared/data/advbench/train.csv")
    ap.add_argument("--prompts-from", help="a logits.h5 written by superficial extract")
    ap.add_argument("--tasks-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                                                         "tasks"))
    ap.add_argument("--examples", type=int, default=0, help="at most this many prompts (0: all; 32 without --prompts-from)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="both models' compute dtype (the reference loads torch_dtype='auto': a bf16 checkpoint such as "
                         "SmolLM2's runs in bfloat16)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    expert, tok = load(a.aligned, dtype)
    antiexpert, _ = load(a.base, dtype)
    expert.eval()
    antiexpert.eval()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    rows = load_rows(a, tok)
    os.makedirs(a.out, exist_ok=True)
    e_logits, a_logits, e_hidden, a_hidden, outputs = [], [], [], [], []
    tokens = same = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for row in rows:
            e_ids = torch.tensor([row["aligned_ids"]])
            a_ids = torch.tensor([row["base_ids"]])
            e_in, a_in = e_ids, a_ids
            e_past = a_past = None
            generated = []
            for _ in range(a.max_new_tokens):
                eo = expert(e_in, past_key_values=e_past, use_cache=True, output_hidden_states=True)
                ao = antiexpert(a_in, past_key_values=a_past, use_cache=True, output_hidden_states=True)
                e_past, a_past = eo.past_key_values, ao.past_key_values
                e_logits.append(eo.logits[:, -1, :].float())
                a_logits.append(ao.logits[:, -1, :].float())
                e_hidden.append(eo.hidden_states[-1][:, -1, :].float())
                a_hidden.append(ao.hidden_states[-1][:, -1, :].float())
                nxt = eo.logits[:, -1, :].argmax(-1, keepdim=True)
                generated.append(int(nxt))
                tokens += 1
                if int(nxt) == eos:
                    break
                if row["stop"] and any(x in tok.decode(generated, skip_special_tokens=True) for x in row["stop"]):
                    break
                e_in, a_in = nxt, nxt
            outputs.append(tok.decode(generated, skip_special_tokens=True))
            same += generated == row["ours"]
        expert_all = torch.cat(e_logits, 0)
        anti_all = torch.cat(a_logits, 0)
        ev, ei = torch.topk(expert_all, k=a.top_k, dim=-1)
        av, ai = torch.topk(anti_all, k=a.top_k, dim=-1)
        torch.save({"logit": ev, "indices": ei}, os.path.join(a.out, "expert.bin"))
        torch.save({"logit": av, "indices": ai}, os.path.join(a.out, "antiexpert.bin"))
        torch.save(torch.cat(e_hidden, 0), os.path.join(a.out, "expert_hidden.bin"))
        torch.save(torch.cat(a_hidden, 0), os.path.join(a.out, "antiexpert_hidden.bin"))
        with open(os.path.join(a.out, "predictions.jsonl"), "w") as f:
            for row, o in zip(rows, outputs):
                f.write(json.dumps({"instruction": row["prompt"], "response": o}) + "\n")
    wall = time.perf_counter() - t0
    print(json.dumps({"bench": "reference-extract", "tool": "transformers " + transformers.__version__,
                      "dtype": a.dtype, "examples": len(rows), "tokens": tokens,
                      "same_answers_as_ours": same if a.prompts_from else None, "wall_s": wall, "tokens_per_s": tokens / wall,
                      "threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
