#pragma once
// Products of float32 activation rows with a bf16 weight matrix on a CPU without bf16 arithmetic
// (no AVX-512 BF16: Skylake to Ice Lake Xeons, AMD before Zen 4, AVX2 machines): y =
// round_bf16(round_bf16(x) · Wᵀ) (+ b), the arithmetic of a bf16 matmul, by float32 BLAS. A bf16
// value widens to float32 exactly and a product of two bf16 values is exact in float32, so a float32
// GEMM of the widened operands sums the same products as a bf16 matmul (in another order); each sum
// is then rounded to bf16 and the bias added in float32.
//
// The weights stay bf16 in memory (half of float32's): blocks of their rows are widened into a
// buffer that stays in the cache, each multiplied with all rows of x. torch::linear on bf16 operands
// (oneDNN), which such a CPU runs without bf16 instructions, made SmolLM2-135M's prompt and scoring
// passes 3-4x slower than float32 (`bench speed`, Ice Lake, 2 cores); `bench gemm-small --dtype
// bfloat16` compares the two on the model's shapes.
#include <torch/torch.h>

#include "kernels/small_gemm.hpp"

namespace sf::kernels {

// Whether x · weightᵀ + bias may run here: x float32 and weight bf16 on the CPU, weight a contiguous
// matrix [N,K] with x's last dimension K, bias (if any) float32 contiguous [N]; no autograd.
bool widened_gemm_applies(const torch::Tensor& x, const Projection& p);

// x [..., K] → [..., N] float32. ShapeError unless widened_gemm_applies(x, p).
torch::Tensor widened_gemm(const torch::Tensor& x, const Projection& p);

}  // namespace sf::kernels
