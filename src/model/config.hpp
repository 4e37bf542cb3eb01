#pragma once
// config.json → typed model config. Unknown model_type, unknown keys that change the
// computation, and unsupported options (e.g. a rope_scaling type we do not implement) are
// ConfigErrors naming the file and key; never silent defaults. Keys known not to change the
// computation are accepted: token ids and names (unk_token_id, _model_name_or_path, ...),
// transformers' generate() defaults, encoder-decoder switches at their defaults, and
// quantization_config (the loader takes only unquantized weights; see config.cpp).
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sf::model {

struct RopeScaling {
  std::string type;  // "llama3" (only supported type)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 1.0;
  int64_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  std::string model_type;  // "llama" | "mistral" | "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v bias (qwen2: always true)
  std::optional<int64_t> sliding_window;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig from_file(const std::filesystem::path& config_json);
  nlohmann::json to_json() const;  // HF-compatible config.json
};

}  // namespace sf::model
