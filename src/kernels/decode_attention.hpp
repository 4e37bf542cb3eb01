#pragma once
// Attention of one new query position per row against the KV cache, on CPU, fp32: what a decoding
// step needs. Per row and query head: scores q·k_j · scale over the cached positions j, masked
// positions set to the lowest float, softmax, Σ_j p_j v_j. The same arithmetic as the batched
// matmul/softmax/matmul path of model/causal_lm.cpp, in one pass per (row, KV head) without
// materialising [B,H,1,L] scores or launching two small GEMMs per row and head; a row with no
// allowed position gets the mean of its values, as the softmax of equal scores gives.
//
// AVX-512 only (kernels/small_gemm.hpp's small_gemm_supported()); `decode_attention_applies` says
// when the kernel may be used. exp is a polynomial (Cephes' expf), within 2 ulp of std::exp.
#include <torch/torch.h>

namespace sf::kernels {

// Whether the kernel takes these operands: one query position, float32 CPU tensors with unit
// stride in the last dimension, head_dim a multiple of 16, query heads a multiple of KV heads,
// allowed [B,1,L] bool, no autograd.
bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& allowed);

// q [B,H,1,D], k and v [B,KV,L,D] (any strides with unit stride in D), allowed [B,1,L] bool (true:
// the query may attend to position j). Query head h reads KV head h / (H / KV). → [B,1,H*D].
// ShapeError when decode_attention_applies is false.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& allowed, double scale);

// e^x for 16 floats at once, as the kernel computes it (exposed for its accuracy test).
void exp16(const float* x, float* y);

}  // namespace sf::kernels
