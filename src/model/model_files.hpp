#pragma once
// Where a model's parts come from, for every stage. A model is named by a path:
//   - a Hugging Face folder: config.json, model.safetensors (or its shards), tokenizer.json;
//   - a GGUF file (*.gguf): config, weights and usually the tokenizer in one file
//     (model/gguf_model.hpp, tokenizer/gguf_tokenizer.hpp). A tokenizer.json beside the file is
//     used instead of the file's own tokenizer when both exist.
// Weights: CausalLM::load takes either. Fingerprints and the lm_head alone: heads/base_model.hpp.
#include <filesystem>
#include <string>

#include "model/config.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::model {

bool is_gguf_model(const std::filesystem::path& model);

// The model's config (config.json, or the GGUF metadata).
ModelConfig load_model_config(const std::filesystem::path& model);

// The tokenizer of a model folder or GGUF file as above, or of a tokenizer.json file named
// directly. IoError naming what is missing when there is none.
tok::Tokenizer load_tokenizer(const std::filesystem::path& model);
bool has_tokenizer(const std::filesystem::path& model);

// The tokenizer.json document load_tokenizer reads (the file's bytes, or the one made from GGUF
// metadata); its sha256 is the tokenizer's content_hash().
std::string tokenizer_json_text(const std::filesystem::path& model);

}  // namespace sf::model
