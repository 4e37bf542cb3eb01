#include "model/flops.hpp"

namespace sf::model {

double layer_product_flops(const ModelConfig& c) {
  const double hd = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double per_layer = hd * q * 2 + hd * kv * 2 + 3 * hd * I;  // multiply-adds: q and o, k and v, MLP
  return 2.0 * per_layer * static_cast<double>(c.num_hidden_layers);
}

double lm_head_flops(const ModelConfig& c) {
  return 2.0 * static_cast<double>(c.hidden_size) * static_cast<double>(c.vocab_size);
}

std::vector<std::pair<int64_t, int64_t>> product_shapes(const ModelConfig& c, int64_t tensor) {
  const int64_t hd = c.hidden_size, I = c.intermediate_size / tensor, V = c.vocab_size / tensor;
  const int64_t q = c.num_attention_heads * c.head_dim / tensor, kv = c.num_key_value_heads * c.head_dim / tensor;
  return {{I, hd}, {hd, I}, {V, hd}, {q, hd}, {kv, hd}, {hd, q}};
}

}  // namespace sf::model
