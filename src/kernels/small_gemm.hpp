#pragma once
// Products of a few activation rows with weight matrices on CPU: y_i = x · W_iᵀ (+ b_i), x, b_i and
// y_i float32, the W_i float32 or all bf16. With bf16 weights, x is rounded to bf16 (to nearest even),
// the products of bf16 pairs are summed in float32 and each sum is rounded to bf16 before the bias is
// added: the arithmetic of a bf16 matmul (torch::linear on bf16 operands), at half the weight traffic
// of float32. The sums are made one of two ways (Bf16Sums): by AVX-512 BF16's dot products where the
// CPU has them, else by widening both operands to float32 and adding each product with a float32 FMA.
//
// Decoding multiplies 1 to 64 rows by every weight of the model. A BLAS GEMM packs the whole weight
// matrix for that (OpenBLAS 0.3.21 does so even for one row on x86-64) and runs a kernel shaped for
// large products; this kernel reads each weight row once from memory and multiplies it with all
// rows of x while it is in the L1 cache, so decoding is bound by the memory bandwidth. Several
// weights that share the input (q/k/v, gate/up) are computed in one parallel region.
//
// AVX-512 or AVX2 (kernels/isa.hpp, checked at run time; float32 and widened bf16 sums on both,
// native bf16 sums on AVX-512 only); `applies` says when it may be used, and callers use
// torch::linear otherwise (other CPUs, other dtypes, more rows, a GPU, autograd). Threads:
// at::parallel_for over blocks of weight rows, so torch's thread count applies. Sums run in a
// different order than BLAS: results agree with torch::linear to rounding (tests/kernels).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "kernels/isa.hpp"

namespace sf::kernels {

// Most rows of x the kernel takes with the instructions of `isa`; BLAS takes more. `superficial bench
// gemm-small` on SmolLM2's shapes (2 cores of an Ice Lake Xeon): AVX-512 1.4-2.0x BLAS at 32 rows,
// 1.4-1.5x at 64 (an earlier machine: 0.90-0.93x at 128); AVX2 (--isa avx2, OpenBLAS's Haswell
// kernels) 1.2x at 32 rows, 0.70-0.79x at 64.
constexpr int64_t small_gemm_max_rows(Isa isa) { return isa == Isa::kAvx512 ? 64 : 32; }

// The kernel uses best_isa() by default (kernels/isa.hpp): AVX-512 where the CPU has it, else AVX2.
// Whether it also has bf16 arithmetic (AVX-512 BW and BF16: Cooper Lake, Sapphire Rapids and later
// Xeons, Zen 4 and later).
bool small_gemm_bf16_supported();

// How the products with bf16 weights are summed.
// - kNative: AVX-512 BF16's vdpbf16ps, which adds two products of bf16 pairs to each float32 lane
//   (denormal inputs and results count as zero).
// - kWidened: both operands widened to float32, exactly (a bf16 value is a float32 whose low 16 bits
//   are zero), each product added by a float32 FMA. A product of two bf16 values is exact in float32,
//   so the two ways differ only in the order of the sums (and in denormals). Runs with either
//   instruction set (AVX-512F: Skylake to Ice Lake Xeons, which have no bf16 arithmetic; AVX2).
enum class Bf16Sums { kNative, kWidened };
// This CPU's way: kNative where small_gemm_bf16_supported(), else kWidened.
Bf16Sums bf16_sums();
// Whether this CPU can sum bf16 products that way with the instructions of `isa`.
bool small_gemm_bf16_supported(Bf16Sums sums, Isa isa = best_isa());

struct Projection {
  torch::Tensor weight;  // [N,K]
  torch::Tensor bias;    // [N], or undefined
};

// Whether x · weightᵀ + bias may use the kernel with the instructions of `isa`: the CPU has them; x
// and bias float32, weight float32 or (where small_gemm_bf16_supported(sums, isa)) bf16, all on the CPU;
// weight a contiguous matrix [N,K] with x's last dimension K; bias contiguous [N]; at most
// small_gemm_max_rows(isa) rows of x; no autograd.
bool small_gemm_applies(const torch::Tensor& x, const Projection& p, Bf16Sums sums = bf16_sums(), Isa isa = best_isa());

// x [..., K] → one [..., N_i] per projection, computed together. Every projection must satisfy
// small_gemm_applies(x, projection, sums, isa), and their weights share one dtype (ShapeError
// otherwise).
std::vector<torch::Tensor> small_gemm(const torch::Tensor& x, const std::vector<Projection>& projections,
                                      Bf16Sums sums = bf16_sums(), Isa isa = best_isa());

}  // namespace sf::kernels
