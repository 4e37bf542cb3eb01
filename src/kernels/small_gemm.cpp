#include "kernels/small_gemm.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/avx512.hpp"

namespace sf::kernels {

namespace {

constexpr int kTileInputs = 8;      // rows of x per micro-tile: 8 × R accumulators + R + 1 vectors in 32 registers
constexpr int kPrefetchTiles = 4;   // weight rows are prefetched into L2 this many tiles ahead
constexpr int64_t kBlockRows = 24;  // weight rows per unit of parallel work: a multiple of every tile height

struct Operand {
  const float* x;  // [M,K] row-major
  int64_t M, K;
};

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
  if constexpr (MR == 8) {
    for (int r = 0; r < R; ++r) {
      float sums[8];
      avx512::sum8(acc[0][r], acc[1][r], acc[2][r], acc[3][r], acc[4][r], acc[5][r], acc[6][r], acc[7][r], sums);
      for (int m = 0; m < 8; ++m) y[m * ldy + r] = sums[m] + (bias ? bias[r] : 0.0f);
    }
  } else {
    for (int m = 0; m < MR; ++m) {
      for (int r = 0; r < R; ++r) y[m * ldy + r] = _mm512_reduce_add_ps(acc[m][r]) + (bias ? bias[r] : 0.0f);
    }
  }
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
  for (int64_t m = 0; m < a.M; m += kTileInputs) {
    tile_of<R>(std::min<int64_t>(kTileInputs, a.M - m), a.x + m * a.K, a.K, w, ahead, bias, y + m * ldy, ldy);
  }
}

// Weight rows [n0, n1) of one projection w [N,K] into columns [n0, n1) of its output [M,N], R rows
// per tile. Each tile prefetches the rows kPrefetchTiles tiles further on (the last rows of w near its
// end).
template <int R>
void row_range(const Operand& a, const float* w, const float* bias, float* y, int64_t N, int64_t n0, int64_t n1) {
  const auto row = [&](int64_t i) { return w + i * a.K; };
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    const float* ahead = row(std::min(n + kPrefetchTiles * R, N - R));
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
  return (a.M + 2) * a.K * static_cast<int64_t>(sizeof(float)) <= l1 ? 2 : 3;
}

}  // namespace

bool small_gemm_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}

namespace {

bool cpu_float(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

}  // namespace

bool small_gemm_applies(const torch::Tensor& x, const Projection& p) {
  const torch::Tensor& w = p.weight;
  if (!small_gemm_supported() || !cpu_float(x) || !cpu_float(w)) return false;
  if (x.requires_grad() || w.requires_grad() || x.dim() < 1 || w.dim() != 2 || !w.is_contiguous()) return false;
  if (x.size(-1) != w.size(1) || x.size(-1) == 0 || x.numel() / x.size(-1) > kSmallGemmMaxRows) return false;
  if (!p.bias.defined()) return true;
  return cpu_float(p.bias) && !p.bias.requires_grad() && p.bias.dim() == 1 && p.bias.size(0) == w.size(0) &&
         p.bias.is_contiguous();
}

std::vector<torch::Tensor> small_gemm(const torch::Tensor& x, const std::vector<Projection>& projections) {
  for (const Projection& p : projections) {
    if (!small_gemm_applies(x, p)) {
      throw ShapeError("small_gemm: operands do not fit the kernel: x " + std::to_string(x.dim()) + "-d with " +
                       std::to_string(x.numel()) + " elements, weight of " + std::to_string(p.weight.numel()));
    }
  }
  const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [M,K]
  const Operand a{x2.data_ptr<float>(), x2.size(0), x2.size(1)};

  // Blocks of weight rows over all projections, split over the threads.
  constexpr int64_t block_rows = kBlockRows;
  const auto row_range_of = tile_rows(a) == 2 ? row_range<2> : row_range<3>;
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
      const Projection& p = projections[i];
      const int64_t N = p.weight.size(0), n0 = (b - first_block[i]) * block_rows;
      row_range_of(a, p.weight.data_ptr<float>(), p.bias.defined() ? p.bias.data_ptr<float>() : nullptr,
                   outputs[i].data_ptr<float>(), N, n0, std::min(N, n0 + block_rows));
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
