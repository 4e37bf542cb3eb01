#include "model/shard.hpp"

#include "core/error.hpp"

namespace sf::model {

std::vector<int> valid_tensor_sizes(const ModelConfig& c) {
  std::vector<int> out;
  for (int64_t t = 1; t <= c.num_key_value_heads; ++t) {
    if (c.num_key_value_heads % t == 0) out.push_back(static_cast<int>(t));
  }
  return out;
}

ModelShard ModelShard::make(const ModelConfig& c, int size, int rank, const std::string& where) {
  if (size < 1 || rank < 0 || rank >= size) {
    throw ConfigError(where + ": tensor rank " + std::to_string(rank) + " of " + std::to_string(size));
  }
  if (c.num_key_value_heads % size != 0) {
    std::string ok;
    for (int t : valid_tensor_sizes(c)) ok += (ok.empty() ? "" : ", ") + std::to_string(t);
    throw ConfigError(where + ": parallel.tensor = " + std::to_string(size) + " does not divide the " +
                      std::to_string(c.num_key_value_heads) + " KV heads (T that would work: " + ok + ")");
  }
  if (c.vocab_size < size || c.intermediate_size < size) {
    throw ConfigError(where + ": parallel.tensor = " + std::to_string(size) + " exceeds the vocabulary (" +
                      std::to_string(c.vocab_size) + ") or the MLP width (" + std::to_string(c.intermediate_size) +
                      ")");
  }
  ModelShard s;
  s.size = size;
  s.rank = rank;
  s.kv_heads = dist::split_range(c.num_key_value_heads, size, rank);
  const int64_t rep = c.num_attention_heads / c.num_key_value_heads;
  s.heads = {s.kv_heads.begin * rep, s.kv_heads.end * rep};  // query head h uses KV head h / rep
  s.intermediate = dist::split_range(c.intermediate_size, size, rank);
  s.vocab = dist::split_range(c.vocab_size, size, rank);
  return s;
}

}  // namespace sf::model
