#pragma once
// The k largest values of each row of a float32 matrix on a CPU with AVX-512 or AVX2 (the scan in
// topk_math.inc, compiled for each; kernels/isa.hpp), in the canonical order
// of model::topk: values descending, equal values by ascending index. One pass over each row keeps
// the candidates above a threshold that rises as they are pruned to the best k, so nearly every
// element costs one vector compare; torch::topk (CPU, torch 1.13) partially sorts every row and
// model::topk then needs a second pass for ties and a sort to order them.
#include <torch/torch.h>

#include <cstdint>

#include "kernels/isa.hpp"

namespace sf::kernels {

struct RowTopK {
  torch::Tensor values;  // [N,k] float32
  torch::Tensor ids;     // [N,k] int64
};

// x [N,V] float32, contiguous, on the CPU; 1 <= k <= V. Returns false, with out untouched, where the
// kernel does not apply (a CPU without `isa`, other operands) or a row holds a NaN (torch ranks NaN
// above every number; callers use torch::topk then).
bool topk_rows(const torch::Tensor& x, int64_t k, RowTopK& out, Isa isa = best_isa());

}  // namespace sf::kernels
