#pragma once
// A GGUF file (io/gguf.hpp) as a model of this decoder, read the way llama.cpp reads it:
//   - config from `general.architecture` (llama, qwen2) and its `<arch>.*` metadata: context
//     length, embedding length, block count, feed-forward length, head counts, key/value length,
//     RMS epsilon, rope base, vocabulary size (else the token list), tied output (no output.weight),
//     q/k/v biases (qwen2; llama when present), BOS/EOS/pad ids from tokenizer.ggml.* (EOS plus
//     the EOT/EOM ids llama.cpp also stops at). Llama-3 rope scaling, which llama.cpp's converter
//     stores as per-dimension factors in `rope_freqs.weight`, is turned back into rope_scaling
//     llama3 (verified to reproduce every factor). Any other rope scaling, an unknown `<arch>.*`
//     or top-level key, or a split file is a ConfigError naming the file and key.
//   - tensors under their Hugging Face names (token_embd -> model.embed_tokens, blk.N.attn_q ->
//     model.layers.N.self_attn.q_proj, ...), dequantized to float32, with the Q/K row permutation
//     that convert_hf_to_gguf.py applies to llama-architecture weights undone. A tensor with no
//     Hugging Face counterpart is a FormatError naming it.
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "io/gguf.hpp"
#include "model/causal_lm.hpp"
#include "model/config.hpp"

namespace sf::model {

class GgufModel {
 public:
  // Opens and validates the file and its config (IoError, FormatError, ConfigError).
  static GgufModel open(const std::filesystem::path& file);

  const io::GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  // Every weight by its Hugging Face name; each reader dequantizes (and un-permutes) one tensor.
  TensorReaders tensors() const;
  // One weight by its Hugging Face name as float32 on the CPU; FormatError when absent.
  torch::Tensor tensor(const std::string& hf_name) const;

 private:
  std::shared_ptr<const io::GgufFile> file_;
  ModelConfig config_;
  std::map<std::string, std::string> gguf_names_;  // HF name -> GGUF tensor name
};

}  // namespace sf::model
