#pragma once
// What heads need from a base model (a Hugging Face folder or a GGUF file, model/model_files.hpp)
// without loading the model: identity fingerprints stored in a head's metadata and in provenance,
// and the lm_head weight alone.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

namespace sf::heads {

// Weight files of a model folder: tensor name → file (model.safetensors, or the shards named by
// model.safetensors.index.json). IoError when neither exists; FormatError for a malformed index.
std::map<std::string, std::filesystem::path> weight_map(const std::filesystem::path& dir);

// sha256 (hex) identifying a model without reading all its weights: the hash of
//   "config.json:" sha256(config.json) "\n"
// followed, for every weight file in name order, by
//   name ":" size ":" sha256(first 1 MiB) ":" sha256(last 1 MiB) "\n"
// (a safetensors header, with every tensor's name, dtype, shape and offset, lies in its first bytes;
// the sampled data tells two models of the same shape apart). Reads O(1 MiB) per file.
// For a GGUF file: the hash of
//   "gguf:" name ":" size ":" sha256(header, metadata and tensor infos) ":" sha256(first 1 MiB of
//   the data section) ":" sha256(its last 1 MiB) "\n".
std::string model_fingerprint(const std::filesystem::path& dir);

// sha256 of tokenizer.json, else of tokenizer.model, else "none" (a folder without a tokenizer).
// For a GGUF file: sha256 of the tokenizer.json document its tokenizer is read from (the file
// beside it, or the one made from its metadata: Tokenizer::content_hash), else "none".
std::string tokenizer_fingerprint(const std::filesystem::path& dir);

// lm_head.weight [V,H] as float32 on the CPU, read alone (model.embed_tokens.weight when the
// config ties the embeddings; output.weight / token_embd.weight of a GGUF file, dequantized).
// FormatError naming the file when absent or of the wrong shape.
torch::Tensor load_lm_head_weight(const std::filesystem::path& dir);

}  // namespace sf::heads
