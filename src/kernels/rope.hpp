#pragma once
// Rotary position embedding applied in place on CPU, fp32, fused: for every head of every row and
// position, the halves (x1, x2) of its head_dim become (x1·cos − x2·sin, x2·cos + x1·sin), as
// `x * cos + rotate_half(x) * sin` in model/causal_lm.cpp computes with five tensor ops and two
// temporaries. Queries and keys of a layer are rotated in one parallel region.
//
// For AVX-512 and AVX2 (kernels/isa.hpp; the arithmetic in rope_math.inc, compiled for each): `isa`
// picks one, by default the best this CPU has, and `rope_applies` says when the kernel may be used.
// Results agree with the torch ops to rounding (tests/kernels).
#include <torch/torch.h>

#include <vector>

#include "kernels/isa.hpp"

namespace sf::kernels {

// Whether the kernel takes these operands: each x [B,T,heads·D] float32, contiguous, on the CPU,
// without autograd (grad mode off), D even and heads·D its last dimension; cos and sin [B,T,D/2]
// float32 contiguous on the CPU; and a CPU with `isa`.
bool rope_applies(const torch::Tensor& x, int64_t heads, const torch::Tensor& cos, const torch::Tensor& sin,
                  Isa isa = best_isa());

struct Rotated {
  torch::Tensor x;  // [B,T,heads·D], rotated in place
  int64_t heads;
};

// Rotates every tensor in place by the angles whose cosines and sines are cos and sin [B,T,D/2]
// (position (b,t), frequency i). ShapeError when rope_applies fails for one of them.
void rope_(const std::vector<Rotated>& xs, const torch::Tensor& cos, const torch::Tensor& sin, Isa isa = best_isa());

}  // namespace sf::kernels
