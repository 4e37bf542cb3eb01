#include "kernels/small_gemm.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

constexpr int kTileInputs = 8;      // rows of x per micro-tile: 8 × R accumulators + R + 1 vectors in 32 registers
constexpr int kPrefetchTiles = 4;   // weight rows are prefetched into L2 this many tiles ahead
constexpr int64_t kBlockRows = 24;  // weight rows per unit of parallel work: a multiple of every tile height

struct Operand {
  const void* x;  // [M,K] row-major: float32 (rounded to bf16 for widened bf16 sums), or bf16 for native ones
  int64_t M, K;
  bool widened = false;  // bf16 weights, summed as Bf16Sums::kWidened
};

// The sums of an MR × R tile of accumulators (16 lanes each) into y (+ bias); with kRound, each sum
// rounded to bf16 (to nearest even) before the bias is added, as a bf16 matmul returns it.
template <int MR, int R, bool kRound>
__attribute__((target("avx512f"), always_inline)) inline void store(__m512 (&acc)[MR][R], const float* bias, float* y,
                                                                    int64_t ldy) {
  const auto out = [&](float sum, int r) {
    if constexpr (kRound) sum = static_cast<float>(c10::BFloat16(sum));
    return sum + (bias ? bias[r] : 0.0f);
  };
  if constexpr (MR == 8) {
    for (int r = 0; r < R; ++r) {
      float sums[8];
      avx512::sum8(acc[0][r], acc[1][r], acc[2][r], acc[3][r], acc[4][r], acc[5][r], acc[6][r], acc[7][r], sums);
      for (int m = 0; m < 8; ++m) y[m * ldy + r] = out(sums[m], r);
    }
  } else {
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) y[m * ldy + r] = out(_mm512_reduce_add_ps(acc[m][r]), r);
    }
  }
}

// y[m, r] = Σ_k x[m,k] · w[r,k] (+ bias[r]) for MR rows of x and R weight rows, K in steps of 16
// (the last step masked). The R weight vectors of a step are loaded once and used for all MR rows;
// the same step of the R rows at `ahead` is prefetched into L2.
template <int MR, int R>
__attribute__((target("avx512f"), always_inline)) inline void tile(const float* x, int64_t K, const float* w,
                                                                   const float* ahead, const float* bias, float* y,
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

// The same for bf16 x and w (their bits as uint16_t), K in steps of 32: each vdpbf16ps adds the two
// products of 16 pairs of bf16 values to the 16 float32 lanes of an accumulator (exact products,
// float32 sums; the instruction treats denormal inputs and results as zero).
#define SF_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
template <int MR, int R>
SF_AVX512_BF16 __attribute__((always_inline)) inline void tile_bf16(const uint16_t* x, int64_t K, const uint16_t* w,
                                                                    const uint16_t* ahead, const float* bias, float* y,
                                                                    int64_t ldy) {
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
      asm("" : "+v"(xv));  // as in tile: one load of x per step
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

// The same for float32 x (already rounded to bf16) and bf16 w (their bits as uint16_t), K in steps of
// 16: each step's weights widened to float32 (a bf16 value is the high half of a float32's bits), the
// products added by float32 FMAs, each sum rounded to bf16 at the end. One prefetch per 64-byte line
// of weights (every other step).
#define SF_AVX512_BW __attribute__((target("avx512f,avx512bw,avx512vl")))
SF_AVX512_BW __attribute__((always_inline)) inline __m512 widen(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

template <int MR, int R>
SF_AVX512_BW __attribute__((always_inline)) inline void tile_widened(const float* x, int64_t K, const uint16_t* w,
                                                                     const uint16_t* ahead, const float* bias, float* y,
                                                                     int64_t ldy) {
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
      asm("" : "+v"(xv));  // as in tile: one load of x per step
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

// tile<mr, R> for a run-time mr in [1, MR].
template <int R, int MR = kTileInputs>
__attribute__((target("avx512f"), always_inline)) inline void tile_of(int64_t mr, const float* x, int64_t K,
                                                                      const float* w, const float* ahead,
                                                                      const float* bias, float* y, int64_t ldy) {
  if constexpr (MR > 1) {
    if (mr < MR) return tile_of<R, MR - 1>(mr, x, K, w, ahead, bias, y, ldy);
  }
  tile<MR, R>(x, K, w, ahead, bias, y, ldy);
}

// All rows of x against R weight rows, in groups of kTileInputs rows of x (the weight rows stay in
// L1 between groups).
template <int R>
__attribute__((target("avx512f"))) void rows(const Operand& a, const float* w, const float* ahead, const float* bias,
                                             float* y, int64_t ldy) {
  const auto* x = static_cast<const float*>(a.x);
  for (int64_t m = 0; m < a.M; m += kTileInputs) {
    tile_of<R>(std::min<int64_t>(kTileInputs, a.M - m), x + m * a.K, a.K, w, ahead, bias, y + m * ldy, ldy);
  }
}

// tile_bf16<mr, R> for a run-time mr in [1, MR].
template <int R, int MR = kTileInputs>
SF_AVX512_BF16 __attribute__((always_inline)) inline void tile_bf16_of(int64_t mr, const uint16_t* x, int64_t K,
                                                                       const uint16_t* w, const uint16_t* ahead,
                                                                       const float* bias, float* y, int64_t ldy) {
  if constexpr (MR > 1) {
    if (mr < MR) return tile_bf16_of<R, MR - 1>(mr, x, K, w, ahead, bias, y, ldy);
  }
  tile_bf16<MR, R>(x, K, w, ahead, bias, y, ldy);
}

template <int R>
SF_AVX512_BF16 void rows_bf16(const Operand& a, const uint16_t* w, const uint16_t* ahead, const float* bias, float* y,
                              int64_t ldy) {
  const auto* x = static_cast<const uint16_t*>(a.x);
  for (int64_t m = 0; m < a.M; m += kTileInputs) {
    tile_bf16_of<R>(std::min<int64_t>(kTileInputs, a.M - m), x + m * a.K, a.K, w, ahead, bias, y + m * ldy, ldy);
  }
}

// tile_widened<mr, R> for a run-time mr in [1, MR].
template <int R, int MR = kTileInputs>
SF_AVX512_BW __attribute__((always_inline)) inline void tile_widened_of(int64_t mr, const float* x, int64_t K,
                                                                        const uint16_t* w, const uint16_t* ahead,
                                                                        const float* bias, float* y, int64_t ldy) {
  if constexpr (MR > 1) {
    if (mr < MR) return tile_widened_of<R, MR - 1>(mr, x, K, w, ahead, bias, y, ldy);
  }
  tile_widened<MR, R>(x, K, w, ahead, bias, y, ldy);
}

template <int R>
SF_AVX512_BW void rows_widened(const Operand& a, const uint16_t* w, const uint16_t* ahead, const float* bias, float* y,
                               int64_t ldy) {
  const auto* x = static_cast<const float*>(a.x);
  for (int64_t m = 0; m < a.M; m += kTileInputs) {
    tile_widened_of<R>(std::min<int64_t>(kTileInputs, a.M - m), x + m * a.K, a.K, w, ahead, bias, y + m * ldy, ldy);
  }
}

// bf16 weights, either way of summing.
template <int R>
void rows(const Operand& a, const uint16_t* w, const uint16_t* ahead, const float* bias, float* y, int64_t ldy) {
  if (a.widened) {
    rows_widened<R>(a, w, ahead, bias, y, ldy);
  } else {
    rows_bf16<R>(a, w, ahead, bias, y, ldy);
  }
}

// Weight rows [n0, n1) of one projection w [N,K] into columns [n0, n1) of its output [M,N], R rows
// per tile. Each tile prefetches the rows kPrefetchTiles tiles further on (the last rows of w near its
// end).
template <int R, typename W>
void row_range(const Operand& a, const W* w, const float* bias, float* y, int64_t N, int64_t n0, int64_t n1) {
  const auto row = [&](int64_t i) { return w + i * a.K; };
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    const W* ahead = row(std::min(n + kPrefetchTiles * R, N - R));
    rows<R>(a, row(n), ahead, bias ? bias + n : nullptr, y + n, N);
  }
  for (; n < n1; ++n) rows<1>(a, row(n), row(std::min(n + kPrefetchTiles, N - 1)), bias ? bias + n : nullptr, y + n, N);
}

// Weight rows per tile. While x and the tile's weight rows fit in the L1 data cache, 2 rows (16
// accumulators): a stand-alone copy of this kernel read weights ~10-15% faster with 2 than with 3 at 16
// rows on K = 576 (2 AVX-512 cores, 48 KiB L1, weights in 2 MiB pages; `bench gemm-small` showed the
// change within its noise). When x spills to L2, every x vector loaded costs more, and 3 rows share
// each one (the copy measured 3 ~8% faster on K = 1536 at 16 rows).
int tile_rows(const Operand& a) {
  static const int64_t l1 = [] {
    const long bytes = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return bytes > 0 ? static_cast<int64_t>(bytes) : int64_t{32} << 10;
  }();
  return (a.M + 2) * a.K * static_cast<int64_t>(sizeof(float)) <= l1 ? 2 : 3;  // float32 x; bf16 x is half
}

}  // namespace

bool small_gemm_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}

bool small_gemm_bf16_supported() {
  static const bool supported =
      small_gemm_supported() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
  return supported;
}

Bf16Sums bf16_sums() { return small_gemm_bf16_supported() ? Bf16Sums::kNative : Bf16Sums::kWidened; }

bool small_gemm_bf16_supported(Bf16Sums sums) {
  static const bool widened =
      small_gemm_supported() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return sums == Bf16Sums::kNative ? small_gemm_bf16_supported() : widened;
}

namespace {

// One block of weight rows [n0, n1) of p into y, R rows per tile.
template <int R>
void block(const Operand& a, const Projection& p, torch::Tensor& y, int64_t n0, int64_t n1) {
  const int64_t N = p.weight.size(0);
  const float* bias = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
  if (is_cpu_bf16(p.weight)) {
    const auto* w = reinterpret_cast<const uint16_t*>(p.weight.data_ptr<at::BFloat16>());
    row_range<R>(a, w, bias, y.data_ptr<float>(), N, n0, n1);
  } else {
    row_range<R>(a, p.weight.data_ptr<float>(), bias, y.data_ptr<float>(), N, n0, n1);
  }
}

}  // namespace

bool small_gemm_applies(const torch::Tensor& x, const Projection& p, Bf16Sums sums) {
  const torch::Tensor& w = p.weight;
  if (!small_gemm_supported() || !is_cpu_float(x)) return false;
  if (!is_cpu_float(w) && !(is_cpu_bf16(w) && small_gemm_bf16_supported(sums))) return false;
  if (x.requires_grad() || w.requires_grad() || x.dim() < 1 || w.dim() != 2 || !w.is_contiguous()) return false;
  if (x.size(-1) != w.size(1) || x.size(-1) == 0 || x.numel() / x.size(-1) > kSmallGemmMaxRows) return false;
  return bias_fits(p.bias, w.size(0));
}

std::vector<torch::Tensor> small_gemm(const torch::Tensor& x, const std::vector<Projection>& projections,
                                      Bf16Sums sums) {
  const bool bf16 = !projections.empty() && is_cpu_bf16(projections[0].weight);
  for (const Projection& p : projections) {
    if (!small_gemm_applies(x, p, sums) || is_cpu_bf16(p.weight) != bf16) {
      throw ShapeError("small_gemm: operands do not fit the kernel: x " + std::to_string(x.dim()) + "-d with " +
                       std::to_string(x.numel()) + " elements, weight of " + std::to_string(p.weight.numel()));
    }
  }
  const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [M,K]
  const bool widened = bf16 && sums == Bf16Sums::kWidened;
  // The kernel's x: rounded to bf16 for bf16 weights, and widened back to float32 for widened sums.
  const torch::Tensor xk = !bf16 ? x2 : widened ? x2.to(torch::kBFloat16).to(torch::kFloat32) : x2.to(torch::kBFloat16);
  const Operand a{xk.data_ptr(), x2.size(0), x2.size(1), widened};

  // Blocks of weight rows over all projections, split over the threads.
  constexpr int64_t block_rows = kBlockRows;
  const auto block_of = tile_rows(a) == 2 ? block<2> : block<3>;
  std::vector<torch::Tensor> outputs;
  std::vector<int64_t> first_block{0};  // first block of each projection
  for (const Projection& p : projections) {
    outputs.push_back(torch::empty({a.M, p.weight.size(0)}, x2.options()));
    first_block.push_back(first_block.back() + (p.weight.size(0) + block_rows - 1) / block_rows);
  }
  at::parallel_for(0, first_block.back(), 1, [&](int64_t begin, int64_t end) {
    size_t i = 0;
    for (int64_t b = begin; b < end; ++b) {
      while (b >= first_block[i + 1]) ++i;
      const int64_t N = projections[i].weight.size(0), n0 = (b - first_block[i]) * block_rows;
      block_of(a, projections[i], outputs[i], n0, std::min(N, n0 + block_rows));
    }
  });

  std::vector<torch::Tensor> shaped;
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = projections[i].weight.size(0);
    shaped.push_back(outputs[i].view(shape));
  }
  return shaped;
}

}  // namespace sf::kernels
