#pragma once
// Causal, masked, grouped-query attention on CPU, fp32, fused: per row b, query position t and
// query head: scores q·k_j · scale over the key positions j the query may attend to, the others set
// to the lowest float, softmax, Σ_j p_j v_j. The same arithmetic as the batched matmul / masked
// softmax / matmul path of model/causal_lm.cpp, without materialising the [B,H,T,L] scores: each
// (row, KV head, query position) is one task that reads only the keys up to its last allowed one
// (half of them for causal scoring), and one decoding step is a handful of such tasks instead of two
// small GEMMs per row and head. A query with no allowed position gets the mean of the values over
// all L positions, as the softmax of equal scores gives.
//
// AVX-512 only (kernels/small_gemm.hpp's small_gemm_supported()); `attention_applies` says when
// the kernel may be used. exp is a polynomial (Cephes' expf), within 2 ulp of std::exp.
#include <torch/torch.h>

namespace sf::kernels {

// Whether the kernel takes these operands: float32 CPU tensors with unit stride in the last
// dimension, head_dim a multiple of 16, query heads a multiple of KV heads, allowed [B,T,L] bool,
// no autograd.
bool attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& allowed);

// q [B,H,T,D], k and v [B,KV,L,D] (any strides with unit stride in D; e.g. views of a KV cache),
// allowed [B,T,L] bool (true: query t may attend to key position j). Query head h reads KV head
// h / (H / KV). → [B,T,H*D]. ShapeError when attention_applies is false.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, double scale);

// e^x for 16 floats at once, as the kernel computes it (exposed for its accuracy test).
void exp16(const float* x, float* y);

}  // namespace sf::kernels
