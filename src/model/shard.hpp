#pragma once
// How a model is cut over the T ranks of a tensor group (the Megatron layout): rank r holds
//   q/k/v projections (and biases): the output rows of its attention heads and KV heads,
//   o_proj: the matching input columns (partial sums, all-reduced over the group),
//   gate/up projections: rows [intermediate range), down_proj: the matching columns (all-reduced),
//   embedding and lm_head: the rows of its vocabulary range (the logits come out split),
//   norms: whole (replicated).
// T must divide the number of KV heads (then it divides the attention heads too); the MLP width
// and the vocabulary are split in balanced contiguous ranges (dist::split_range), so they need not
// be multiples of T.
#include <string>
#include <vector>

#include "dist/layout.hpp"
#include "model/config.hpp"

namespace sf::model {

struct ModelShard {
  int size = 1;  // T
  int rank = 0;
  dist::Range heads;         // attention heads held by this rank
  dist::Range kv_heads;      // KV heads held by this rank
  dist::Range intermediate;  // MLP rows (gate/up) and columns (down)
  dist::Range vocab;         // embedding / lm_head rows, logits columns

  // ConfigError (one line, naming `where` and the T values that would work) when T does not
  // divide the KV heads.
  static ModelShard make(const ModelConfig& c, int size, int rank, const std::string& where);
};

// The tensor-parallel sizes a model allows: the divisors of its KV heads, ascending.
std::vector<int> valid_tensor_sizes(const ModelConfig& c);

}  // namespace sf::model
