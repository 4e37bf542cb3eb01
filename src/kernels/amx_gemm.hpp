#pragma once
// Products of float32 activation rows with bf16 weight matrices on a CPU with AMX-BF16 (Sapphire
// Rapids and later Xeons): y_i = round_bf16(round_bf16(x) · W_iᵀ) (+ b_i), x, b_i and y_i float32.
// x is rounded to bf16 (to nearest even), the products of bf16 pairs are summed in float32 by the
// tile unit (tdpbf16ps; denormal inputs and results count as zero) and each sum is rounded to bf16
// before the bias is added: the arithmetic of a bf16 matmul (torch::linear on bf16 operands, which
// oneDNN also runs on the tile unit here), for any number of rows.
//
// The weights are packed once (amx_pack) into the tile unit's layout, so a product reads them as
// they lie: for a few rows (decoding) each 1 KiB tile is streamed from memory once per call, for
// many rows (prompt and scoring passes) it is reused from the caches by blocks of rows. torch 1.13's
// oneDNN matmul reorders the whole weight matrix on every call and returns bf16, which the model
// then converts back to float32. `superficial bench gemm-small --dtype bfloat16` compares the two.
//
// Threads: at::parallel_for over blocks of 32 weight rows (and of rows of x), so torch's thread
// count applies. Every thread loads its own tile configuration.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sf::kernels {

// Whether this CPU has AMX-BF16 (and AVX-512 BF16, for the rounding) and the operating system lets
// this process use the tile registers (Linux: asked for once, arch_prctl(ARCH_REQ_XCOMP_PERM)).
bool amx_gemm_supported();

// A bf16 weight matrix [N,K] in the tile unit's layout: tiles [ceil(N/16), ceil(K/32), 16, 32],
// tile (n, k) row r holding, for its 16 outputs j, the weights of inputs 2r and 2r + 1:
// tiles[n][k][r][2j + p] = W[16n + j][32k + 2r + p], zero outside W.
struct AmxWeight {
  torch::Tensor tiles;  // bf16, contiguous
  int64_t out = 0;      // N
  int64_t in = 0;       // K
};

// W [N,K] (any float dtype; rounded to bf16 first) on the CPU → its tiles.
AmxWeight amx_pack(const torch::Tensor& weight);

struct AmxProjection {
  const AmxWeight* weight = nullptr;
  torch::Tensor bias;  // [N] float32, or undefined
};

// x [..., K] float32 on the CPU → one [..., N_i] float32 per projection, computed together. Every
// weight must have x's K and every bias its N, float32 and contiguous (ShapeError otherwise);
// amx_gemm_supported() must hold. No autograd.
std::vector<torch::Tensor> amx_gemm(const torch::Tensor& x, const std::vector<AmxProjection>& projections);

// The gated activation of a SwiGLU MLP in one pass: x [..., K] → silu(g) ⊙ u [..., N] float32, g and
// u the products with `gate` and `up` as amx_gemm makes them (bf16-rounded sums, no bias), silu(g) =
// g / (1 + e^(−g)) in float32 with a polynomial exp (within 2 ulp of std::exp; torch::silu's formula
// with Sleef's exp). Each unit of work computes the same 16 outputs of both products and writes only
// their activation: the [M, 2N] products are never stored, read back, activated and multiplied by
// separate passes. gate and up must be packed, of one shape [N,K]; ShapeError otherwise.
torch::Tensor amx_swiglu(const torch::Tensor& x, const AmxWeight& gate, const AmxWeight& up);

}  // namespace sf::kernels
