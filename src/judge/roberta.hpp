#pragma once
// RobertaForSequenceClassification (transformers), inference only: the encoder that ToxiGen's
// `toxigen_roberta` classifier is. Read from a Hugging Face folder (config.json and
// model.safetensors) by HF tensor names; a missing or unused tensor, or a config key that would
// change the computation and is not implemented, is an error naming the file and key.
//
//   embeddings: word + position + token_type[0], LayerNorm. Positions are those of transformers:
//     pad_token_id + cumsum(ids != pad) for real tokens, pad_token_id for padding (they depend on
//     the ids, not on the attention mask).
//   layers (post-LN): x = LN(x + attn(x)); x = LN(x + W2 gelu(W1 x))   (gelu: exact, erf)
//   head: logits = out_proj(tanh(dense(x[:, 0])))                      (the <s> position)
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace sf::judge {

struct RobertaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 1;
  double layer_norm_eps = 1e-5;
  int64_t pad_token_id = 1;
  int64_t num_labels = 2;
  std::vector<std::string> labels;  // id2label by index, or LABEL_<i> when the config has none

  // Longest input (special tokens included) the learned positions cover.
  int64_t max_tokens() const { return max_position_embeddings - pad_token_id - 1; }

  static RobertaConfig from_file(const std::filesystem::path& config_json);
};

class RobertaClassifier {
 public:
  // `dtype`: compute dtype (float32, bfloat16, float16); weights are converted to it.
  static RobertaClassifier load(const std::filesystem::path& dir, torch::Device device = torch::kCPU,
                                torch::Dtype dtype = torch::kFloat32);

  // ids [B,T] int64, attention_mask [B,T] (1: token, 0: padding) -> logits [B,num_labels] float32.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& attention_mask) const;

  const RobertaConfig& config() const;
  torch::Device device() const;

  struct Weights;

 private:
  std::shared_ptr<const Weights> w_;
};

}  // namespace sf::judge
