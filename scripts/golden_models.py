#!/usr/bin/env python3
"""Golden fixtures for the C++ decoder: tiny random Hugging Face models and transformers' outputs.

For each variant this writes tests/fixtures/models/<variant>/ with
  config.json, model.safetensors      the model, as `save_pretrained` writes it
  reference.safetensors               transformers' outputs (fp32, eager attention):
    left_ids, left_mask   [3,12] int64  a left-padded batch of three sequences (12, 7 and 4 tokens)
    left_logits           [3,12,V]      logits, positions from the mask (cumsum - 1) as in generate()
    left_hidden           [3,12,H]      final hidden states (after the last norm)
    right_ids, right_mask, right_logits the same sequences right-padded
    greedy_tokens         [3,8] int64   greedy continuations of the left-padded batch (no EOS)
Dev-time only (needs torch + transformers); CI reads the committed files.
Usage: python3 scripts/golden_models.py [--out tests/fixtures/models]
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

VOCAB, HIDDEN, INTER, HEADS = 256, 64, 64, 4
LENGTHS = (12, 7, 4)
NEW_TOKENS = 8

VARIANTS = {
    # SmolLM2-like: tied embeddings.
    "llama_tied": lambda: LlamaConfig(tie_word_embeddings=True, num_hidden_layers=2, num_key_value_heads=2,
                                      rms_norm_eps=1e-5, rope_theta=100000.0),
    # Llama-2-like: separate lm_head; 4 query heads per KV head.
    "llama_untied": lambda: LlamaConfig(tie_word_embeddings=False, num_hidden_layers=2, num_key_value_heads=1,
                                        rms_norm_eps=1e-6, rope_theta=10000.0),
    # Llama-3: rope_scaling llama3 with a short original context so that all three bands occur.
    "llama3": lambda: LlamaConfig(tie_word_embeddings=False, num_hidden_layers=2, num_key_value_heads=2,
                                  rms_norm_eps=1e-5, rope_theta=500000.0,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    # Mistral with a 4-token sliding window on 12-token sequences.
    "mistral_swa": lambda: MistralConfig(tie_word_embeddings=True, num_hidden_layers=2, num_key_value_heads=2,
                                         rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=4),
    # Qwen2: q/k/v biases.
    "qwen2": lambda: Qwen2Config(tie_word_embeddings=True, num_hidden_layers=2, num_key_value_heads=2,
                                 rms_norm_eps=1e-6, rope_theta=1000000.0, use_sliding_window=False),
}


def make_model(name, seed):
    cfg = VARIANTS[name]()
    cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads = VOCAB, HIDDEN, INTER, HEADS
    cfg.head_dim = HIDDEN // HEADS
    cfg.max_position_embeddings = 64
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 1, 2, 0
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    # Larger weights than the 0.02 init (peaked distributions, clear greedy choices), and norm
    # weights and biases away from their 1/0 init so that they are exercised.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def batches(seed):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(3, VOCAB, (n,), generator=g) for n in LENGTHS]
    T = max(LENGTHS)
    left_ids = torch.zeros(len(seqs), T, dtype=torch.int64)
    left_mask = torch.zeros_like(left_ids)
    right_ids, right_mask = torch.zeros_like(left_ids), torch.zeros_like(left_ids)
    for i, s in enumerate(seqs):
        left_ids[i, T - len(s):], left_mask[i, T - len(s):] = s, 1
        right_ids[i, :len(s)], right_mask[i, :len(s)] = s, 1
    return left_ids, left_mask, right_ids, right_mask


@torch.no_grad()
def greedy(model, ids, mask):
    """Greedy decoding with transformers' own generate(); also returns the smallest top-1 margin."""
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                         eos_token_id=None, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    margin = min(float((s.topk(2).values[:, 0] - s.topk(2).values[:, 1]).min()) for s in out.scores)
    return out.sequences[:, ids.shape[1]:], margin


@torch.no_grad()
def build(name, out_dir, seed):
    model = make_model(name, seed)
    left_ids, left_mask, right_ids, right_mask = batches(seed + 1)
    pos = (left_mask.cumsum(-1) - 1).masked_fill(left_mask == 0, 1)
    left = model(input_ids=left_ids, attention_mask=left_mask, position_ids=pos, output_hidden_states=True)
    left_hidden = model.model(input_ids=left_ids, attention_mask=left_mask, position_ids=pos).last_hidden_state
    right = model(input_ids=right_ids, attention_mask=right_mask)
    tokens, margin = greedy(model, left_ids, left_mask)
    if margin < 1e-3:
        raise SystemExit(f"{name}: greedy top-1 margin {margin} too small; choose another seed")
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    gen_cfg = os.path.join(d, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    save_file({
        "left_ids": left_ids, "left_mask": left_mask, "left_logits": left.logits.float().contiguous(),
        "left_hidden": left_hidden.float().contiguous(),
        "right_ids": right_ids, "right_mask": right_mask, "right_logits": right.logits.float().contiguous(),
        "greedy_tokens": tokens.contiguous(),
    }, os.path.join(d, "reference.safetensors"), metadata={"variant": name, "generator": "scripts/golden_models.py"})
    with open(os.path.join(d, "config.json")) as f:
        keys = sorted(json.load(f))
    print(f"{name}: greedy margin {margin:.4f}; config keys {keys}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models"))
    args = ap.parse_args()
    for i, name in enumerate(VARIANTS):
        build(name, args.out, seed=1000 + 17 * i)


if __name__ == "__main__":
    main()
