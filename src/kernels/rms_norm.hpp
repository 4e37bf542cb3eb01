#pragma once
// RMS normalisation of rows on CPU, fp32, fused: y = weight ⊙ x / sqrt(mean(x²) + eps) over the last
// dimension, in one pass over each row instead of the five tensor ops of model/causal_lm.cpp's
// rms_norm (square, mean, add, rsqrt, two products), and, in add_rms_norm, with the residual sum
// x += delta that precedes every norm of a decoder layer. Decoding runs two norms per layer on a
// few rows, where each torch op costs more to start than to compute.
//
// AVX-512 only (kernels/isa.hpp: cpu_has(Isa::kAvx512)); `rms_norm_applies` says when the
// kernel may be used. The sum of squares runs in a different order than torch's mean: results
// agree with the torch ops to rounding (tests/kernels).
#include <torch/torch.h>

namespace sf::kernels {

// Whether the kernel takes these operands: x [..., Hd] and weight [Hd] float32, contiguous, on the
// CPU, without autograd (x must not require gradients and grad mode must be off); delta, when given,
// the same shape as x and contiguous.
bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& delta = {});

// weight ⊙ x / sqrt(mean(x², -1) + eps) → a new tensor shaped like x. ShapeError when
// rms_norm_applies(x, weight) is false.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// x += delta in place, then rms_norm(x, weight, eps). ShapeError when rms_norm_applies(x, weight,
// delta) is false.
torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps);

}  // namespace sf::kernels
