#pragma once
// RMS normalisation of rows on CPU, fp32, fused: y = weight ⊙ x / sqrt(mean(x²) + eps) over the last
// dimension, in one pass over each row instead of the five tensor ops of model/causal_lm.cpp's
// rms_norm (square, mean, add, rsqrt, two products), and, in add_rms_norm, with the residual sum
// x += delta that precedes every norm of a decoder layer. Decoding runs two norms per layer on a
// few rows, where each torch op costs more to start than to compute.
//
// For AVX-512 and AVX2 (kernels/isa.hpp; the arithmetic in rms_norm_math.inc, compiled for each):
// `isa` picks one, by default the best this CPU has, and `rms_norm_applies` says when the kernel may
// be used. The sum of squares runs in a different order than torch's mean: results agree with the
// torch ops to rounding (tests/kernels).
#include <torch/torch.h>

#include "kernels/isa.hpp"

namespace sf::kernels {

// Whether the kernel takes these operands: x [..., Hd] and weight [Hd] float32, contiguous, on the
// CPU, without autograd (x must not require gradients and grad mode must be off); delta, when given,
// the same shape as x and contiguous; and a CPU with `isa`.
bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& delta = {},
                      Isa isa = best_isa());

// weight ⊙ x / sqrt(mean(x², -1) + eps) → a new tensor shaped like x. ShapeError when
// rms_norm_applies(x, weight) is false.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Isa isa = best_isa());

// x += delta in place, then rms_norm(x, weight, eps). ShapeError when rms_norm_applies(x, weight,
// delta) is false.
torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps,
                           Isa isa = best_isa());

}  // namespace sf::kernels
