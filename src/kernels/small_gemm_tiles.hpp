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
// Sums: with bf16 weights (W = uint16_t, their bits), x has been rounded to bf16 by the caller, the
// products of bf16 pairs are summed in float32 and each sum is rounded to bf16 (to nearest even)
// before the bias is added: the arithmetic of a bf16 matmul.
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

#include "kernels/avx512.hpp"

namespace sf::kernels::tiles {

#define SF_AVX512F __attribute__((target("avx512f")))
#define SF_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define SF_AVX512_BW __attribute__((target("avx512f,avx512bw,avx512vl")))
#define SF_AVX2 __attribute__((target("avx2,fma")))

// A sum as the tile returns it: with kRound rounded to bf16 first; then the bias of weight row r.
template <bool kRound>
inline float finish(float sum, const float* bias, int r) {
  if constexpr (kRound) sum = static_cast<float>(c10::BFloat16(sum));
  return sum + (bias ? bias[r] : 0.0f);
}

// ---- AVX-512: 16 float32 lanes, 32 registers: MR = 8 rows of x × R ≤ 3 weight rows.

constexpr int kAvx512Inputs = 8;  // 8 × R accumulators + R + 1 vectors in 32 registers

// The sums of an MR × R tile of accumulators into y (+ bias).
template <int MR, int R, bool kRound>
SF_AVX512F __attribute__((always_inline)) inline void store(__m512 (&acc)[MR][R], const float* bias, float* y,
                                                            int64_t ldy) {
  if constexpr (MR == 8) {
    for (int r = 0; r < R; ++r) {
      float sums[8];
      avx512::sum8(acc[0][r], acc[1][r], acc[2][r], acc[3][r], acc[4][r], acc[5][r], acc[6][r], acc[7][r], sums);
      for (int m = 0; m < 8; ++m) y[m * ldy + r] = finish<kRound>(sums[m], bias, r);
    }
  } else {
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) y[m * ldy + r] = finish<kRound>(_mm512_reduce_add_ps(acc[m][r]), bias, r);
    }
  }
}

// float32 x and w, K in steps of 16 (the last step masked).
template <int MR, int R>
struct Avx512Float {
  SF_AVX512F static void run(const float* x, int64_t K, const float* w, const float* ahead, const float* bias, float* y,
                             int64_t ldy) {
    __m512 acc[MR][R];
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = _mm512_loadu_ps(w + r * K + k);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * K + k), _MM_HINT_T1);
      }
      for (int m = 0; m < MR; ++m) {
        __m512 xv = _mm512_loadu_ps(x + m * K + k);
        asm("" : "+v"(xv));  // keeps xv in a register: folded into each FMA it would be loaded R times
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, wv[r], acc[m][r]);
      }
    }
    if (k < K) {
      const __mmask16 tail = avx512::lanes(K - k);
      __m512 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(tail, w + r * K + k);
      for (int m = 0; m < MR; ++m) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + m * K + k);
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, wv[r], acc[m][r]);
      }
    }
    store<MR, R, false>(acc, bias, y, ldy);
  }
};

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
        asm("" : "+v"(xv));  // as in Avx512Float: one load of x per step
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
    store<MR, R, true>(acc, bias, y, ldy);
  }
};

// 16 bf16 values widened to float32 (a bf16 value is the high half of a float32's bits).
SF_AVX512_BW __attribute__((always_inline)) inline __m512 widen(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// float32 x (rounded to bf16) and bf16 w (Bf16Sums::kWidened), K in steps of 16: each step's
// weights widened, the products added by float32 FMAs. One prefetch per 64-byte line of weights
// (every other step).
template <int MR, int R>
struct Avx512Widened {
  SF_AVX512_BW static void run(const float* x, int64_t K, const uint16_t* w, const uint16_t* ahead, const float* bias,
                               float* y, int64_t ldy) {
    __m512 acc[MR][R];
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * K + k)));
        if ((k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * K + k), _MM_HINT_T1);
      }
      for (int m = 0; m < MR; ++m) {
        __m512 xv = _mm512_loadu_ps(x + m * K + k);
        asm("" : "+v"(xv));  // as in Avx512Float: one load of x per step
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, wv[r], acc[m][r]);
      }
    }
    if (k < K) {
      const __mmask16 tail = avx512::lanes(K - k);
      __m512 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = widen(_mm256_maskz_loadu_epi16(tail, w + r * K + k));
      for (int m = 0; m < MR; ++m) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + m * K + k);
        for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, wv[r], acc[m][r]);
      }
    }
    store<MR, R, true>(acc, bias, y, ldy);
  }
};

// ---- AVX2: 8 float32 lanes, 16 registers: MR = 6 rows of x × R = 2 weight rows (12 accumulators,
// 2 weight vectors and one of x).

constexpr int kAvx2Inputs = 6;
constexpr int kAvx2WeightRows = 2;

// The sums of an MR × R tile of accumulators into y (+ bias), four at a time: two rounds of
// horizontal adds leave the halves of four sums in the two 128-bit lanes.
template <int MR, int R, bool kRound>
SF_AVX2 __attribute__((always_inline)) inline void store(__m256 (&acc)[MR][R], const float* bias, float* y,
                                                         int64_t ldy) {
  constexpr int n = MR * R, padded = (n + 3) / 4 * 4;
  __m256 flat[padded];
  for (int i = 0; i < padded; ++i) flat[i] = i < n ? acc[i / R][i % R] : _mm256_setzero_ps();
  float sums[padded];
  for (int i = 0; i < padded; i += 4) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(flat[i], flat[i + 1]), _mm256_hadd_ps(flat[i + 2], flat[i + 3]));
    _mm_storeu_ps(sums + i, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  }
  for (int m = 0; m < MR; ++m) {
    for (int r = 0; r < R; ++r) y[m * ldy + r] = finish<kRound>(sums[m * R + r], bias, r);
  }
}

// The lanes of an 8-float step that hold data when `remaining` floats are left (all bits set).
SF_AVX2 __attribute__((always_inline)) inline __m256i lanes8(int64_t remaining) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(remaining < 8 ? remaining : 8)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// One step of an AVX2 tile: the R weight vectors wv against MR rows of x at column k.
template <int MR, int R>
SF_AVX2 __attribute__((always_inline)) inline void step(__m256 (&acc)[MR][R], const __m256 (&wv)[R], const float* x,
                                                        int64_t K, int64_t k) {
  for (int m = 0; m < MR; ++m) {
    __m256 xv = _mm256_loadu_ps(x + m * K + k);
    asm("" : "+x"(xv));  // as in Avx512Float: one load of x per step
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_fmadd_ps(xv, wv[r], acc[m][r]);
  }
}

// The masked last step (K % 8 columns left); the weight vectors as given.
template <int MR, int R>
SF_AVX2 __attribute__((always_inline)) inline void tail_step(__m256 (&acc)[MR][R], const __m256 (&wv)[R],
                                                             const float* x, int64_t K, int64_t k) {
  const __m256i tail = lanes8(K - k);
  for (int m = 0; m < MR; ++m) {
    const __m256 xv = _mm256_maskload_ps(x + m * K + k, tail);
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_fmadd_ps(xv, wv[r], acc[m][r]);
  }
}

// How an AVX2 tile reads its weights: float32 as they are, one prefetch per 64-byte line (every
// other step), the last step masked.
struct Avx2FloatWeights {
  using W = float;
  static constexpr bool kRound = false;
  static constexpr int64_t kPrefetchMask = 15;
  SF_AVX2 __attribute__((always_inline)) static __m256 load(const float* w) { return _mm256_loadu_ps(w); }
  SF_AVX2 __attribute__((always_inline)) static __m256 load_tail(const float* w, int64_t n) {
    return _mm256_maskload_ps(w, lanes8(n));
  }
};

// bf16 (Bf16Sums::kWidened): 8 values widened to float32, one prefetch per 64-byte line (every fourth
// step); AVX2 has no 16-bit masked load, so the last step's weights are copied into a zeroed buffer.
// Each sum is rounded to bf16.
struct Avx2WidenedWeights {
  using W = uint16_t;
  static constexpr bool kRound = true;
  static constexpr int64_t kPrefetchMask = 31;
  SF_AVX2 __attribute__((always_inline)) static __m256 widen8(__m128i bits) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
  SF_AVX2 __attribute__((always_inline)) static __m256 load(const uint16_t* w) {
    return widen8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  }
  SF_AVX2 __attribute__((always_inline)) static __m256 load_tail(const uint16_t* w, int64_t n) {
    uint16_t last[8] = {};
    std::memcpy(last, w, static_cast<size_t>(n) * sizeof(uint16_t));
    return load(last);
  }
};

// float32 x (rounded to bf16 for widened weights) and the weights as Weights reads them, K in steps
// of 8 (the last step masked).
template <int MR, int R, typename Weights>
struct Avx2Tile {
  using W = typename Weights::W;
  SF_AVX2 static void run(const float* x, int64_t K, const W* w, const W* ahead, const float* bias, float* y,
                          int64_t ldy) {
    __m256 acc[MR][R];
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = Weights::load(w + r * K + k);
        if ((k & Weights::kPrefetchMask) == 0)
          _mm_prefetch(reinterpret_cast<const char*>(ahead + r * K + k), _MM_HINT_T1);
      }
      step<MR, R>(acc, wv, x, K, k);
    }
    if (k < K) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = Weights::load_tail(w + r * K + k, K - k);
      tail_step<MR, R>(acc, wv, x, K, k);
    }
    store<MR, R, Weights::kRound>(acc, bias, y, ldy);
  }
};

template <int MR, int R>
using Avx2Float = Avx2Tile<MR, R, Avx2FloatWeights>;
template <int MR, int R>
using Avx2Widened = Avx2Tile<MR, R, Avx2WidenedWeights>;

#undef SF_AVX512F
#undef SF_AVX512_BF16
#undef SF_AVX512_BW
#undef SF_AVX2

}  // namespace sf::kernels::tiles
