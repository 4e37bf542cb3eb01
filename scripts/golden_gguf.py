#!/usr/bin/env python3
"""Golden GGUF fixtures, written by the `gguf` package (llama.cpp's gguf-py) and checked by transformers.

Writes tests/fixtures/gguf/:
  quants.gguf        alignment 64; metadata of every value type (the values below, also in
                     tests/io/test_gguf.cpp); for every GGML type we dequantize, a tensor `<TYPE>` of
                     random blocks (random bits, with every f16 scale replaced by a finite random
                     half) and `<TYPE>.expected`, gguf.quants.dequantize of those bytes as F32; and a
                     tensor `IQ2_XXS` of a type we do not decode.
  llama_untied.Q8_0.gguf, qwen2.Q8_0.gguf, llama3.F16.gguf
                     the tiny models of tests/fixtures/models converted as llama.cpp's
                     convert_hf_to_gguf.py does (tensor names, Q/K row permutation for llama,
                     norms and biases kept F32, llama3 rope scaling as a rope_freqs tensor) and
  <name>.reference.safetensors
                     left_ids, left_mask (from tests/fixtures/models/<model>/reference.safetensors)
                     and left_logits [3,12,256]: transformers' logits for the GGUF file loaded by its
                     own GGUF loader (from_pretrained(gguf_file=...), dequantized to fp32). transformers
                     ignores rope_freqs, so the llama3 reference is the HF model with its weights
                     rounded to f16, under its original rope scaling (what llama.cpp computes).
  spm.gguf, spm.ids.jsonl
                     a SentencePiece BPE tokenizer (byte fallback, identity normalizer, as Llama's)
                     trained here on the tokenizer golden texts, stored as llama.cpp stores a `llama`
                     vocabulary (tokens, scores, token types; no merges); the ids sentencepiece itself
                     gives for each golden text without a control-token string, one JSON line each.
Dev-time only (needs numpy, torch, transformers, gguf, sentencepiece); CI reads the committed files.
Usage: python3 scripts/golden_gguf.py [--out tests/fixtures/gguf]
"""
import argparse
import json
import os
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import gguf
from gguf import GGMLQuantizationType as Q

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
CASES = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "cases.inp")

# Byte offsets of the f16 fields of each block (scales and mins), which must be finite.
F16_FIELDS = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2],
              Q.Q5_K: [0, 2], Q.Q6_K: [208]}


def random_half(rng, n):
    """Finite halfs of either sign over the whole exponent range, subnormals and zeros included."""
    bits = rng.integers(0, 0x7C00, size=n, dtype=np.uint16) | (rng.integers(0, 2, size=n, dtype=np.uint16) << 15)
    return bits.view(np.float16)


def quants(path, rng):
    w = gguf.GGUFWriter(path, "test")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo ✓")
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", -1.5e300)
    w.add_array("test.strings", ["a", "", "ß"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -2.0])
    w.add_array("test.nested", [[1, 2], [3]])
    for qt in (Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ2_XXS):
        block, size = gguf.GGML_QUANT_SIZES[qt]
        rows, cols = 3, 2 * max(block, 32)
        n_blocks = rows * cols // block
        if qt == Q.F16:
            raw = random_half(rng, rows * cols).view(np.uint8)
        elif qt == Q.BF16:
            bits = rng.integers(0, 0x7F80, size=rows * cols, dtype=np.uint16)  # finite, both signs
            raw = (bits | (rng.integers(0, 2, size=rows * cols, dtype=np.uint16) << 15)).view(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
            for off in F16_FIELDS.get(qt, []):
                raw[:, off:off + 2] = random_half(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        raw = np.ascontiguousarray(raw).reshape(rows, -1)
        w.add_tensor(qt.name, raw, raw_dtype=qt)  # shape from the bytes per row
        if qt != Q.IQ2_XXS:
            expected = gguf.quants.dequantize(raw, qt).astype(np.float32)
            assert expected.shape == (rows, cols) and np.isfinite(expected).all(), qt.name
            w.add_tensor(qt.name + ".expected", expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def permute(t, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute: rotary halves interleaved as GGML's rope expects."""
    return t.reshape(n_head, 2, t.shape[0] // n_head // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.N.<module...>.weight|bias
    return f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def llama3_rope_factors(cfg):
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors for rope_type llama3."""
    rope = cfg["rope_parameters"]
    base, dim = rope["rope_theta"], cfg["head_dim"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high, old = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"], \
        rope["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in freqs.tolist():
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def convert(model_dir, path, arch, qtype):
    """A tiny HF model folder as a GGUF file, the way convert_hf_to_gguf.py writes it."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny " + os.path.basename(model_dir))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    rope = cfg.get("rope_parameters") or {}
    w.add_rope_freq_base(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if arch == "llama":
        w.add_rope_dimension_count(cfg["head_dim"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == Q.Q8_0 else gguf.LlamaFileType.MOSTLY_F16)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    if rope.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    for hf, t in tensors.items():
        t = t.float()
        if arch == "llama" and hf.endswith("q_proj.weight"):
            t = permute(t, cfg["num_attention_heads"])
        if arch == "llama" and hf.endswith("k_proj.weight"):
            t = permute(t, cfg["num_key_value_heads"])
        data = t.numpy()
        if data.ndim == 1:
            w.add_tensor(gguf_name(hf), data.astype(np.float32))
        elif qtype == Q.F16:
            w.add_tensor(gguf_name(hf), data.astype(np.float16))
        else:
            w.add_tensor(gguf_name(hf), gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@torch.no_grad()
def logits(model, ref):
    ids, mask = ref["left_ids"], ref["left_mask"]
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float().contiguous()


@torch.no_grad()
def models(out):
    from transformers import AutoModelForCausalLM
    for src, arch, qtype in (("llama_untied", "llama", Q.Q8_0), ("qwen2", "qwen2", Q.Q8_0), ("llama3", "llama", Q.F16)):
        name = f"{src}.{qtype.name}"
        path = os.path.join(out, name + ".gguf")
        convert(os.path.join(MODELS, src), path, arch, qtype)
        ref = load_file(os.path.join(MODELS, src, "reference.safetensors"))
        original = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, src), dtype=torch.float32,
                                                        attn_implementation="eager").eval()
        if src == "llama3":
            for p in original.parameters():
                if p.dim() == 2:
                    p.copy_(p.half().float())
            left = logits(original, ref)
            # The GGUF must hold exactly those f16 weights, un-permuted by transformers' own loader.
            loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=name + ".gguf", dtype=torch.float32)
            sd = loaded.state_dict()
            for k, v in original.state_dict().items():
                assert torch.equal(sd[k], v), k
        else:
            model = AutoModelForCausalLM.from_pretrained(out, gguf_file=name + ".gguf", dtype=torch.float32,
                                                         attn_implementation="eager").eval()
            left = logits(model, ref)
            # Quantization moves the logits a little; a wrong un-permutation would move them a lot.
            drift = float((left - ref["left_logits"]).abs().max())
            assert drift < 0.5, (name, drift)
        save_file({"left_ids": ref["left_ids"], "left_mask": ref["left_mask"], "left_logits": left},
                  os.path.join(out, name + ".reference.safetensors"),
                  metadata={"generator": "scripts/golden_gguf.py", "model": name})
        print(f"{name}: {os.path.getsize(path)} bytes")


def spm(out):
    import sentencepiece as spm_lib
    with open(CASES, encoding="utf-8", newline="") as f:
        texts = f.read().split("\n__case__\n")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(t.replace("\n", " ") + "\n")
        prefix = os.path.join(tmp, "spm")
        spm_lib.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, model_type="bpe", vocab_size=800, byte_fallback=True,
            normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
            allow_whitespace_only_pieces=True, character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2,
            pad_id=-1, minloglevel=2)
        sp = spm_lib.SentencePieceProcessor(model_file=prefix + ".model")
    # As convert_hf_to_gguf.py _create_vocab_sentencepiece.
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i) else
                     6 if sp.is_byte(i) else 1)
    w = gguf.GGUFWriter(os.path.join(out, "spm.gguf"), "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out, "spm.ids.jsonl"), "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            if any(s in t for s in ("<unk>", "<s>", "</s>")):
                continue
            f.write(json.dumps({"case": i, "ids": sp.encode(t)}) + "\n")
    print(f"spm.gguf: {len(tokens)} tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    quants(os.path.join(args.out, "quants.gguf"), np.random.default_rng(20240601))
    models(args.out)
    spm(args.out)


if __name__ == "__main__":
    main()
