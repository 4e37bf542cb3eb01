#pragma once
// The micro-tiles of kernels/small_gemm.cpp (include only from there): y[m, r] = Σ_k x[m,k] · w[r,k]
// (+ bias[r]) for MR rows of x and R weight rows, each an instruction set (kernels/isa.hpp) and a
// way of summing (kernels/small_gemm.hpp's Bf16Sums). Every tile is a class template T<MR, R> with
// one function of the same signature,
//   static void run(const X* x, int64_t K, const W* w, const W* ahead, const float* bias, float* y,
//                   int64_t ldy);
// x [MR,K] and w [R,K] row-major, y [MR, ldy]; the same step of the R weight rows at `ahead` is
// prefetched into L2. The R weight vectors of a step are loaded once and used for all MR rows of
// x. Each is compiled for its instruction set only and may run only where the CPU has it.
//
// The tiles that sum in float32 FMAs (float32 weights, and bf16 weights widened to float32) are
// written once, in kernels/small_gemm_math.inc, and compiled for AVX-512F and AVX2:
// on_avx512::FloatTile, on_avx512::WidenedTile, on_avx2::FloatTile, on_avx2::WidenedTile. AVX-512
// BF16's native sums are Avx512Bf16 below.
//
// Sums: with bf16 weights (W = uint16_t, their bits), x has been rounded to bf16 by the caller, the
// products of bf16 pairs are summed in float32 and each sum is rounded to bf16 (to nearest even)
// before the bias is added: the arithmetic of a bf16 matmul.
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

#include "kernels/avx2.hpp"
#include "kernels/avx512.hpp"

namespace sf::kernels::tiles {

#define SF_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

// A sum as the tile returns it: with kRound rounded to bf16 first; then the bias of weight row r.
template <bool kRound>
inline float finish(float sum, const float* bias, int r) {
  if constexpr (kRound) sum = static_cast<float>(c10::BFloat16(sum));
  return sum + (bias ? bias[r] : 0.0f);
}

#define SF_ISA_MATH "kernels/small_gemm_math.inc"
#include "kernels/each_isa.inc"

// Rows of x per tile: AVX-512 (32 registers) 8 rows × R ≤ 3 weight rows (8 × R accumulators + R + 1
// vectors); AVX2 (16 registers) 6 rows × 2 weight rows (12 accumulators, 2 weight vectors and one
// of x).
constexpr int kAvx512Inputs = 8;
constexpr int kAvx2Inputs = 6;
constexpr int kAvx2WeightRows = 2;

// bf16 x and w (Bf16Sums::kNative), K in steps of 32: each vdpbf16ps adds the two products of 16
// pairs of bf16 values to the 16 float32 lanes of an accumulator (exact products, float32 sums; the
// instruction treats denormal inputs and results as zero).
template <int MR, int R>
struct Avx512Bf16 {
  SF_AVX512_BF16 static void run(const uint16_t* x, int64_t K, const uint16_t* w, const uint16_t* ahead,
                                 const float* bias, float* y, int64_t ldy) {
    __m512 acc[MR][R];
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      __m512i wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = _mm512_loadu_si512(w + r * K + k);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * K + k), _MM_HINT_T1);
      }
      for (int m = 0; m < MR; ++m) {
        __m512i xv = _mm512_loadu_si512(x + m * K + k);
        asm("" : "+v"(xv));  // as in small_gemm_math.inc's Tile: one load of x per step
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_dpbf16_ps(acc[m][r], (__m512bh)xv, (__m512bh)wv[r]);
      }
    }
    if (k < K) {
      const __mmask32 tail = avx512::lanes32(K - k);
      __m512i wv[R];
      for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_epi16(tail, w + r * K + k);
      for (int m = 0; m < MR; ++m) {
        const __m512i xv = _mm512_maskz_loadu_epi16(tail, x + m * K + k);
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_dpbf16_ps(acc[m][r], (__m512bh)xv, (__m512bh)wv[r]);
      }
    }
    on_avx512::store<MR, R, true>(acc, bias, y, ldy);
  }
};

#undef SF_AVX512_BF16

}  // namespace sf::kernels::tiles
