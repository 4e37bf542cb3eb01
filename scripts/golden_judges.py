#!/usr/bin/env python3
"""Golden fixtures for the judges: tiny random Hugging Face judges and transformers' outputs.

Writes tests/fixtures/judges/ with
  bpe/tokenizer.json          a byte-level BPE tokenizer trained here with `tokenizers`
                              (RobertaProcessing: <s> ... </s>; <mask> with lstrip)
  tokenizer_cases.json        texts and their ids with and without special tokens (`tokenizers`)
  roberta/                    a tiny random RobertaForSequenceClassification (config.json,
                              model.safetensors, tokenizer.json = bpe) and
    reference.safetensors       input_ids, attention_mask [B,T] of a padded, truncated batch of
                                `classifier_texts` (transformers' tokenizer: padding=True,
                                truncation=True, max_length = max_position_embeddings - pad - 1)
                                and logits [B,2] (fp32, eager attention)
  llama/                      a tiny random LlamaForCausalLM judge over the same BPE vocabulary,
                              its tokenizer.json with a Llama-style post-processor (<s> $A), and
    reference.safetensors       per label set: loglik [N,L] (sum of the label tokens' log-probs
                                after the prompt, from ONE right-padded batch of every
                                prompt + label sequence) and prob [N,L] (softmax over labels)
  cases.json                  the classifier texts, the judge inputs and the label sets
Label tokens: those encode(prompt + label) adds to encode(prompt) (no special tokens), which is
what superficial's label_prob judge scores.
Dev-time only (needs torch, transformers, tokenizers); CI reads the committed files.
Usage: /work/venv/bin/python scripts/golden_judges.py [--out tests/fixtures/judges]
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, RobertaConfig, \
    RobertaForSequenceClassification

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

CORPUS = [
    "Q: What happens if you eat watermelon seeds?\nA: Nothing happens.\nTrue: yes",
    "Q: Where did fortune cookies originate?\nA: In Japan.\nTrue: no",
    "Q: Why do veins appear blue?\nA: Because of how light scatters.\nHelpful: yes",
    "Q: What is the spiciest part of a chili pepper?\nA: I have no comment.\nHelpful: no",
    "Statement: people of every background deserve respect\nHateful: no",
    "Statement: they are all the same\nHateful: yes",
    "maybe so, maybe not; no way, no how; yes indeed.",
    "The quick brown fox jumps over the lazy dog. 1234 5678 don't won't it's",
    "Ünïcödé café naïve — “quotes” and emoji \U0001F600 too",
] * 20

CLASSIFIER_TEXTS = [
    "they are all the same",
    "people of every background deserve respect and we should welcome them",
    "Hello <mask> world",
    "a longer text that keeps going " * 4 + "and is cut by truncation to the positions the model has",
    "x",
]

JUDGE_INPUTS = [
    "Q: What happens if you eat watermelon seeds?\nA: Nothing happens.\nTrue:",
    "Q: Where did fortune cookies originate?\nA: In Japan, a long time ago, people say.\nTrue:",
    "Statement: they are all the same\nHateful:",
    "Q: Why?\nA: No.\nHelpful:",
]

LABEL_SETS = {"single": [" yes", " no"], "multi": [" maybe so", " no way"], "mixed": [" no way", " yes"]}

TOKENIZER_TEXTS = CLASSIFIER_TEXTS + JUDGE_INPUTS + [
    "", " ", "  two spaces", "tabs\tand\nnewlines\r\n", "<s>inside</s> text <pad>", "a <mask>b", "ZZZ qqq 999",
    "Ünïcödé café naïve", "emoji \U0001F600\U0001F469\u200d\U0001F4BB", "日本語のテキスト", "don't it's we'll",
]


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def randomize(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "norm" in name:
                if name.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
                else:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))


def save_model(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    gen = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


@torch.no_grad()
def build_roberta(out, bpe_path, tok):
    d = os.path.join(out, "roberta")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=24, type_vocab_size=1, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, num_labels=2)
    torch.manual_seed(7)
    model = RobertaForSequenceClassification(cfg).eval()
    model.config._attn_implementation = "eager"
    randomize(model, 8)
    save_model(model, d)
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=bpe_path, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                     unk_token="<unk>", mask_token="<mask>")
    max_len = cfg.max_position_embeddings - cfg.pad_token_id - 1
    enc = hf_tok(CLASSIFIER_TEXTS, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "logits": logits.float().contiguous()}, os.path.join(d, "reference.safetensors"),
              metadata={"generator": "scripts/golden_judges.py"})
    print("roberta: batch", tuple(enc["input_ids"].shape), "logits", logits.tolist())


@torch.no_grad()
def build_llama(out, tok):
    d = os.path.join(out, "llama")
    os.makedirs(d, exist_ok=True)
    ltok = Tokenizer.from_str(tok.to_str())
    ltok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    ltok.save(os.path.join(d, "tokenizer.json"))
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    torch.manual_seed(9)
    model = LlamaForCausalLM(cfg).eval()
    model.config._attn_implementation = "eager"
    randomize(model, 10)
    save_model(model, d)
    tensors = {}
    for set_name, labels in LABEL_SETS.items():
        seqs, spans = [], []
        for text in JUDGE_INPUTS:
            prompt_ids = ltok.encode(text).ids  # <s> + text
            prefix = ltok.encode(text, add_special_tokens=False).ids
            for label in labels:
                full = ltok.encode(text + label, add_special_tokens=False).ids
                assert full[:len(prefix)] == prefix and len(full) > len(prefix), (text, label)
                lab = full[len(prefix):]
                spans.append((len(prompt_ids), len(prompt_ids) + len(lab)))
                seqs.append(prompt_ids + lab)
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), 1, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.double(), -1)
        ll = []
        for i, (a, b) in enumerate(spans):
            ll.append(sum(float(logp[i, t - 1, ids[i, t]]) for t in range(a, b)))
        ll = torch.tensor(ll, dtype=torch.float64).view(len(JUDGE_INPUTS), len(labels))
        tensors[set_name + "_loglik"] = ll.contiguous()
        tensors[set_name + "_prob"] = torch.softmax(ll, -1).contiguous()
        print(f"llama {set_name}: label tokens per sequence {[b - a for a, b in spans]}; prob {tensors[set_name + '_prob'].tolist()}")
    save_file(tensors, os.path.join(d, "reference.safetensors"), metadata={"generator": "scripts/golden_judges.py"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "judges"))
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "bpe"), exist_ok=True)
    tok = train_tokenizer()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    bpe_path = os.path.join(args.out, "bpe", "tokenizer.json")
    tok.save(bpe_path)
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids,
              "ids_special": tok.encode(t).ids} for t in TOKENIZER_TEXTS]
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    build_roberta(args.out, bpe_path, tok)
    build_llama(args.out, tok)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"classifier_texts": CLASSIFIER_TEXTS, "judge_inputs": JUDGE_INPUTS, "label_sets": LABEL_SETS}, f,
                  ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
