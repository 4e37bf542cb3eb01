#pragma once
// The arithmetic of a model's matrix products, counted from its config (2 FLOPs per multiply-add):
// what benchmarks compare a measured time with (the time every product would take at the machine's
// GEMM peak). Attention's own products (QK^T, PV) are not counted: they depend on the context
// length and are a few percent of the total at the lengths of a study's prompts and answers.
#include <cstdint>
#include <utility>
#include <vector>

#include "model/config.hpp"

namespace sf::model {

// One token position through every layer: q, k, v, o and the gated MLP (gate, up, down).
double layer_product_flops(const ModelConfig& c);

// One row of the lm_head (hidden -> vocabulary logits).
double lm_head_flops(const ModelConfig& c);

// The products' weight shapes (N output rows, K inputs) on one rank of a tensor group of `tensor`
// ranks, as torch::linear takes them: gate/up, down, lm_head, q, k/v, o.
std::vector<std::pair<int64_t, int64_t>> product_shapes(const ModelConfig& c, int64_t tensor);

}  // namespace sf::model
