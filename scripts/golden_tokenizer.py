#!/usr/bin/env python3
"""Dev-time generator of the tokenizer golden fixtures (tests/fixtures/tokenizer/).

Needs the Python `tokenizers` and `transformers` packages; CI does not run it. Run from the repo root:
    python3 scripts/golden_tokenizer.py

For every tokenizer.json under ../shared/models (never copied into the repo) and for each variant in
tests/fixtures/tokenizer/variants.json (a real file with some components replaced, to cover the
Llama-3 / Qwen2 Split regexes and other components no real file here uses), it writes
  cases.inp           the cases (shared by all), separated by lines "__case__"
  <name>.out          HF encode(case, add_special_tokens=False).ids, one line per case
  <name>.special.out  HF encode(case, add_special_tokens=True).ids
  <name>.decode.jsonl per case: HF decode(ids_special, skip_special_tokens=False / True)
A tokenizer.json that `tokenizers` cannot load gets <name>.load_error with HF's message instead.

It also writes chat_templates.json: golden renderings of a few sample conversations made with
transformers' apply_chat_template, for each real tokenizer_config.json chat_template and for the
canonical templates of models whose config here has none (Llama-2-chat, Zephyr, SmolLM2/ChatML).
"""
import csv
import hashlib
import json
import os
import sys

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SEP = "\n__case__\n"

TEXTS = [
    "",
    " ",
    "  ",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  leading and trailing  ",
    "multiple   spaces    between     words",
    "tabs\tand\t\ttabs",
    "new\nlines\n\nand\n\n\nmore",
    "windows\r\nline\r\nendings\r\n",
    "\n\nleading newlines",
    "trailing newlines\n\n",
    " \n \t \r\n mixed whitespace \t\n",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "3.14159 and 2,718,281 and -42 and 1e-10",
    "It's don't I'm you're we've they'll he'd",
    "IT'S DON'T I'M YOU'RE WE'VE THEY'LL HE'D",
    "It'S dOn'T i'M yOu'Re We'Ve ThEy'Ll hE'd 'S 'LL 'll 'x",
    "rock 'n' roll ''quoted'' 'single'",
    "日本語のテキストです。中文文本测试。",
    "한국어 텍스트",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Ελληνικά κείμενα",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇺🇸",
    "café naïve résumé",
    "combining: e\u0301 a\u0308 o\u0302\u0323",
    "nbsp:\u00a0here and\u00a0\u00a0two",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "ideographic\u3000space and thin\u2009space",
    "def foo(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "https://example.com/path?query=1&b=two#frag",
    "user@example.org, C:\\Users\\name\\file.txt",
    "<s>[INST] What is 2+2? [/INST]",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after end<|endoftext|>",
    "<s>hello</s> <unk> </s>",
    " <s> spaced special </s> ",
    "[INST][/INST][TOOL_CALLS]",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "!!!???...,,,;;;",
    "$100 £50 €20 ¥1000 ₹500",
    "100% sure — em dash – en dash … ellipsis",
    "\u2581already\u2581has\u2581metaspace",
    "ſ long s and 'ſ and K kelvin",
    "ⅷ Roman numeral and ² superscript and ½ fraction",
    "Unicode 16 letters \u1c89\U000105c0x and digits \U00016130\U00016131",
    "a" * 300,
    "The quick brown fox jumps over the lazy dog. " * 3,
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "\x00\x01\x7f control",
]


def dataset_prompts():
    data = os.path.join(SHARED, "data")
    out = []
    with open(os.path.join(data, "advbench", "train.csv"), newline="", encoding="utf-8") as f:
        out += [row["goal"] for row in list(csv.DictReader(f))[:20]]
    with open(os.path.join(data, "gsm", "train.jsonl"), encoding="utf-8") as f:
        out += [json.loads(line)["question"] for line in f.readlines()[:20]]
    with open(os.path.join(data, "toxigen", "hate_asian_1k.txt"), encoding="utf-8") as f:
        out += [line.rstrip("\n") for line in f.readlines()[:20]]
    with open(os.path.join(data, "truthfulqa", "train.csv"), newline="", encoding="utf-8") as f:
        out += [row["Question"] for row in list(csv.DictReader(f))[:20]]
    return out


def write_goldens(name, tok, cases):
    plain, special, dec = [], [], []
    for c in cases:
        ids = tok.encode(c, add_special_tokens=False).ids
        ids_s = tok.encode(c, add_special_tokens=True).ids
        plain.append(" ".join(map(str, ids)))
        special.append(" ".join(map(str, ids_s)))
        dec.append(json.dumps({"decode": tok.decode(ids_s, skip_special_tokens=False),
                               "decode_skip": tok.decode(ids_s, skip_special_tokens=True)}))
    for ext, lines in ((".out", plain), (".special.out", special), (".decode.jsonl", dec)):
        with open(os.path.join(OUT, name + ext), "w", encoding="utf-8", newline="") as f:
            f.write("\n".join(lines) + "\n")


def apply_variant(spec):
    with open(os.path.join(SHARED, spec["base"]), encoding="utf-8") as f:
        root = json.load(f)
    for key, value in spec.get("set", {}).items():
        root[key] = value
    for key, value in spec.get("set_model", {}).items():
        root["model"][key] = value
    drop = set(spec.get("drop_merges", []))
    if drop:
        root["model"]["merges"] = [m for m in root["model"]["merges"] if m not in drop]
    return json.dumps(root, ensure_ascii=False)


# ------------------------------------------------------------------------------------------------
# Chat templates

SAMPLES = {
    "system_user": [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the capital of France?"}],
    "user": [{"role": "user", "content": "How many legs does a spider have?"}],
    "multi_turn": [{"role": "system", "content": "Answer briefly."},
                   {"role": "user", "content": "Hi there!"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke."}],
    "user_assistant": [{"role": "user", "content": "Name a color."},
                       {"role": "assistant", "content": "Blue."},
                       {"role": "user", "content": "Another one."}],
}

# Canonical templates of models whose tokenizer_config.json in ../shared has no chat_template,
# as published in those models' tokenizer_config.json on the Hugging Face Hub.
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
SMOLLM2_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def config_template(folder):
    with open(os.path.join(SHARED, "models", folder, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)

    def tok(key):
        v = cfg.get(key)
        return v["content"] if isinstance(v, dict) else v

    return cfg["chat_template"], tok("bos_token"), tok("eos_token")


def chat_goldens():
    smol = os.path.join(SHARED, "models", "HuggingFaceTB--SmolLM2-135M-Instruct", "tokenizer.json")
    entries = []
    specs = [
        # preset, source, (template, bos, eos), sample conversations the template accepts
        ("mistral-inst", "models/mistralai--Mistral-7B-Instruct-v0.3/tokenizer_config.json",
         config_template("mistralai--Mistral-7B-Instruct-v0.3"), ["user", "user_assistant"]),
        ("llama3", "models/meta-llama--Meta-Llama-3-8B-Instruct/tokenizer_config.json",
         config_template("meta-llama--Meta-Llama-3-8B-Instruct"), ["system_user", "user", "multi_turn"]),
        ("chatml", "models/Qwen--Qwen2.5-0.5B-Instruct/tokenizer_config.json",
         config_template("Qwen--Qwen2.5-0.5B-Instruct"), ["system_user", "multi_turn"]),
        ("chatml", "HuggingFaceTB/SmolLM2-135M-Instruct (canonical, in scripts/golden_tokenizer.py)",
         (SMOLLM2_CHATML, None, "<|im_end|>"), ["system_user", "multi_turn"]),
        ("llama2-chat", "meta-llama/Llama-2-7b-chat-hf (canonical, in scripts/golden_tokenizer.py)",
         (LLAMA2_CHAT, "<s>", "</s>"), ["system_user", "user", "multi_turn"]),
        ("zephyr", "HuggingFaceH4/zephyr-7b-beta (canonical, in scripts/golden_tokenizer.py)",
         (ZEPHYR, "<s>", "</s>"), ["system_user", "user", "multi_turn"]),
    ]
    for preset, source, (template, bos, eos), samples in specs:
        tok = PreTrainedTokenizerFast(tokenizer_file=smol, bos_token=bos, eos_token=eos)
        tok.chat_template = template
        renderings = []
        for s in samples:
            text = tok.apply_chat_template(SAMPLES[s], tokenize=False, add_generation_prompt=True)
            renderings.append({"sample": s, "messages": SAMPLES[s], "text": text})
        entries.append({"preset": preset, "source": source,
                        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
                        "renderings": renderings})
    with open(os.path.join(OUT, "chat_templates.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = TEXTS + dataset_prompts()
    for c in cases:
        assert SEP not in c
    with open(os.path.join(OUT, "cases.inp"), "w", encoding="utf-8", newline="") as f:
        f.write(SEP.join(cases))
    models = sorted(d for d in os.listdir(os.path.join(SHARED, "models"))
                    if os.path.exists(os.path.join(SHARED, "models", d, "tokenizer.json")))
    for folder in models:
        path = os.path.join(SHARED, "models", folder, "tokenizer.json")
        try:
            tok = Tokenizer.from_file(path)
        except Exception as e:  # noqa: BLE001 - the message is the golden
            with open(os.path.join(OUT, folder + ".load_error"), "w", encoding="utf-8") as f:
                f.write(str(e) + "\n")
            print(f"{folder}: tokenizers cannot load it: {e}", file=sys.stderr)
            continue
        write_goldens(folder, tok, cases)
        print(f"{folder}: {len(cases)} cases", file=sys.stderr)
    with open(os.path.join(OUT, "variants.json"), encoding="utf-8") as f:
        variants = json.load(f)
    for name, spec in variants.items():
        write_goldens(name, Tokenizer.from_str(apply_variant(spec)), cases)
        print(f"{name}: {len(cases)} cases", file=sys.stderr)
    chat_goldens()


if __name__ == "__main__":
    main()
