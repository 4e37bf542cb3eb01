#pragma once
// The tokenizer of a GGUF file as a Hugging Face tokenizer.json document, which the exact
// tokenizer (tokenizer.hpp) then loads. Its source, in order:
//   - the file's own `tokenizer.huggingface.json` metadata, when the converter stored it;
//   - else one built from llama.cpp's `tokenizer.ggml.*` metadata, following llama.cpp's meaning:
//     `gpt2`: byte-level BPE from tokens + merges, the pre-tokenizer named by `tokenizer.ggml.pre`
//        (gpt-2, smollm/starcoder/refact: digits split first, llama3 family, qwen2 family);
//     `llama`: SentencePiece BPE with byte fallback, merges recovered from the token scores as
//        transformers does, a "▁" prepended to the text and after every special token when
//        `add_space_prefix` (llama.cpp and Llama-2's tokenizer.json; transformers' own GGUF loader
//        prepends only when the text does not start with a space);
//   control and unknown tokens become special added tokens, user-defined ones plain added tokens;
//   BOS/EOS are added as `add_bos_token`/`add_eos_token` say; without the keys, llama.cpp's
//   defaults (BOS for SentencePiece and the llama3 family; ids <unk> 0, <s> 1, </s> 2 for
//   SentencePiece).
// Anything else (another tokenizer model or pre-tokenizer, an unknown tokenizer key, ids outside
// the vocabulary) is a FormatError naming the file and the key.
#include <string>

#include "io/gguf.hpp"

namespace sf::tok {

// Whether the file describes a tokenizer at all (tokenizer.ggml.model or tokenizer.huggingface.json).
bool gguf_has_tokenizer(const io::GgufFile& file);

// The tokenizer.json text (deterministic: the same file gives the same bytes).
std::string gguf_tokenizer_json(const io::GgufFile& file);

}  // namespace sf::tok
