#pragma once
// Causal, masked, grouped-query attention on CPU, fp32, fused: per row b, query position t and
// query head: scores q·k_j · scale over the key positions j the query may attend to, the others set
// to the lowest float, softmax, Σ_j p_j v_j. The same arithmetic as the batched matmul / masked
// softmax / matmul path of model/causal_lm.cpp, without materialising the [B,H,T,L] scores, and
// reading only the keys from a query's first allowed one to its last (half of them for causal
// scoring, none of a left-padded row's padding). Two ways, by the number of query rows (query
// head, position) per KV head:
// - fewer than 12 (decoding): each (row, KV head, query position) is one task, its query heads'
//   scores dot products over the head dimension; one decoding step is a handful of such tasks
//   instead of two small GEMMs per row and head;
// - otherwise (prompt and scoring passes): the keys of each (row, KV head) are transposed once, and
//   blocks of 12 query rows are scored against them as outer products (each key and value vector
//   loaded once per block, not once per query head and position).
// The sums of the two ways differ in order (within float rounding, not bit for bit). A query with no
// allowed position gets the mean of the values over all L positions, as the softmax of equal
// scores gives. Positions that hold no query (a padded batch's padding, `present` false) are not
// computed: their output rows are zeros.
//
// For AVX-512 and AVX2 (kernels/isa.hpp; the arithmetic in attention_math.inc, compiled for each):
// `isa` picks one, by default the best this CPU has, and `attention_applies` says when the kernel
// may be used. The two differ only in the order of float additions. exp is a polynomial (Cephes'
// expf), within 2 ulp of std::exp, with the same values on both.
#include <torch/torch.h>

#include "kernels/isa.hpp"

namespace sf::kernels {

// Whether the kernel takes these operands: float32 CPU tensors with unit stride in the last
// dimension, head_dim a multiple of 16, query heads a multiple of KV heads, allowed [B,T,L] bool,
// present [B,T] bool on the CPU when defined, no autograd; and a CPU with `isa`.
bool attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& allowed, const torch::Tensor& present = {}, Isa isa = best_isa());

// q [B,H,T,D], k and v [B,KV,L,D] (any strides with unit stride in D; e.g. views of a KV cache),
// allowed [B,T,L] bool (true: query t may attend to key position j); present [B,T] bool or
// undefined (every position holds a query). Query head h reads KV head h / (H / KV). → [B,T,H*D].
// ShapeError when attention_applies is false.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, double scale, const torch::Tensor& present = {},
                        Isa isa = best_isa());

// e^x for 16 floats, as the kernel computes it with `isa` (exposed for its accuracy test).
// ShapeError on a CPU without it.
void exp16(const float* x, float* y, Isa isa = best_isa());

}  // namespace sf::kernels
