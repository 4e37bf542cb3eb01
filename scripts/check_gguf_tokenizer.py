#!/usr/bin/env python3
"""Dev-time check of SentencePiece tokenizers read from GGUF metadata, on real vocabularies too
large to commit: for each model in ../shared/models with a tokenizer.model, writes a tokenizer-only
GGUF as llama.cpp's convert_hf_to_gguf.py does (_create_vocab_sentencepiece: every piece with its
score and type; add_bos_token true), tokenizes the golden texts with
`superficial tokenize --tokenizer X.gguf --cases tests/fixtures/tokenizer/cases.inp [--add-special]`
and compares with the ids `tokenizers` gave for the model's own tokenizer.json
(tests/fixtures/tokenizer/<model>.out, .special.out). Prints the cases that differ.
Usage: python3 scripts/check_gguf_tokenizer.py --cli build/src/superficial
"""
import argparse
import os
import subprocess
import tempfile

import gguf
import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHARED = os.path.join(ROOT, "..", "shared", "models")
GOLDEN = os.path.join(ROOT, "tests", "fixtures", "tokenizer")


def write_gguf(model_file, path):
    sp = spm.SentencePieceProcessor(model_file=model_file)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i) else
                     6 if sp.is_byte(i) else 1)
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    args = ap.parse_args()
    cases = open(os.path.join(GOLDEN, "cases.inp"), encoding="utf-8", newline="").read().split("\n__case__\n")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(SHARED)):
            model_file = os.path.join(SHARED, name, "tokenizer.model")
            if not os.path.exists(model_file) or not os.path.exists(os.path.join(GOLDEN, name + ".out")):
                continue
            path = os.path.join(tmp, name + ".gguf")
            write_gguf(model_file, path)
            for suffix, flags in ((".out", []), (".special.out", ["--add-special"])):
                got = subprocess.run([args.cli, "tokenize", "--tokenizer", path, "--cases",
                                      os.path.join(GOLDEN, "cases.inp")] + flags,
                                     check=True, capture_output=True, text=True).stdout.split("\n")
                want = open(os.path.join(GOLDEN, name + suffix), encoding="utf-8").read().split("\n")
                bad = [i for i in range(len(cases)) if got[i] != want[i]]
                print(f"{name}{suffix}: {len(cases) - len(bad)}/{len(cases)} cases identical")
                for i in bad[:5]:
                    print(f"  case {i} {cases[i][:50]!r}\n    gguf {got[i][:80]}\n    json {want[i][:80]}")


if __name__ == "__main__":
    main()
