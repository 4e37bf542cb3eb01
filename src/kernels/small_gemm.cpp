#include "kernels/small_gemm.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "kernels/operands.hpp"
#include "kernels/small_gemm_tiles.hpp"

namespace sf::kernels {

namespace {

constexpr int kPrefetchTiles = 4;   // weight rows are prefetched into L2 this many tiles ahead
constexpr int64_t kBlockRows = 24;  // weight rows per unit of parallel work: a multiple of every tile height
constexpr int kMaxTileInputs = 8;   // most rows of x in a tile, over all instruction sets

// One tile function (kernels/small_gemm_tiles.hpp) of X rows and W weights.
template <typename X, typename W>
using TileFn = void (*)(const X* x, int64_t K, const W* w, const W* ahead, const float* bias, float* y, int64_t ldy);

// The tiles of one instruction set and way of summing: `inputs` rows of x against `weight_rows`
// weight rows (full), or one (single, for the rows left at the end of a range); [mr - 1] takes mr
// rows of x, for the rows left at the end of x.
template <typename X, typename W>
struct Tiles {
  int inputs = 0, weight_rows = 0;
  std::array<TileFn<X, W>, kMaxTileInputs> full{}, single{};
};

template <typename X, typename W, template <int, int> class T, int R, size_t... I>
constexpr std::array<TileFn<X, W>, kMaxTileInputs> tile_fns(std::index_sequence<I...>) {
  return {&T<static_cast<int>(I) + 1, R>::run...};
}

// The tiles of T<MR, R> (and T<MR, 1>) for MR = 1..kInputs.
template <typename X, typename W, template <int, int> class T, int kInputs, int R>
constexpr Tiles<X, W> tiles_of() {
  static_assert(kInputs <= kMaxTileInputs && kBlockRows % R == 0);
  const auto mr = std::make_index_sequence<kInputs>();
  return {kInputs, R, tile_fns<X, W, T, R>(mr), tile_fns<X, W, T, 1>(mr)};
}

// All rows of x [M,K] against the tile's weight rows w, in groups of t.inputs rows of x (the weight
// rows stay in L1 between groups).
template <typename X, typename W>
void rows(const std::array<TileFn<X, W>, kMaxTileInputs>& tile, int inputs, const X* x, int64_t M, int64_t K,
          const W* w, const W* ahead, const float* bias, float* y, int64_t ldy) {
  for (int64_t m = 0; m < M; m += inputs) {
    const int64_t mr = std::min<int64_t>(inputs, M - m);
    tile[mr - 1](x + m * K, K, w, ahead, bias, y + m * ldy, ldy);
  }
}

// Weight rows [n0, n1) of one projection w [N,K] into columns [n0, n1) of its output y [M,N], R
// rows per tile. Each tile prefetches the rows kPrefetchTiles tiles further on (the last rows of w
// near its end).
template <typename X, typename W>
void row_range(const Tiles<X, W>& t, const X* x, int64_t M, int64_t K, const W* w, const float* bias, float* y,
               int64_t N, int64_t n0, int64_t n1) {
  const int64_t R = t.weight_rows;
  const auto row = [&](int64_t i) { return w + i * K; };
  const auto bias_at = [&](int64_t n) { return bias ? bias + n : nullptr; };
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    rows(t.full, t.inputs, x, M, K, row(n), row(std::min(n + kPrefetchTiles * R, N - R)), bias_at(n), y + n, N);
  }
  for (; n < n1; ++n) {
    rows(t.single, t.inputs, x, M, K, row(n), row(std::min<int64_t>(n + kPrefetchTiles, N - 1)), bias_at(n), y + n, N);
  }
}

// Weight rows per AVX-512 tile. While x and the tile's weight rows fit in the L1 data cache, 2 rows
// (16 accumulators): a stand-alone copy of this kernel read weights ~10-15% faster with 2 than with 3
// at 16 rows on K = 576 (2 AVX-512 cores, 48 KiB L1, weights in 2 MiB pages; `bench gemm-small`
// showed the change within its noise). When x spills to L2, every x vector loaded costs more, and 3
// rows share each one (the copy measured 3 ~8% faster on K = 1536 at 16 rows). AVX2 has 16 registers
// and takes 2 rows always (tiles::kAvx2WeightRows).
int avx512_weight_rows(int64_t M, int64_t K) {
  static const int64_t l1 = [] {
    const long bytes = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return bytes > 0 ? static_cast<int64_t>(bytes) : int64_t{32} << 10;
  }();
  return (M + 2) * K * static_cast<int64_t>(sizeof(float)) <= l1 ? 2 : 3;  // float32 x; bf16 x is half
}

// Every instruction set's tiles, [0] with 2 weight rows and [1] with 3 for AVX-512.
using tiles::kAvx2Inputs;
using tiles::kAvx2WeightRows;
using tiles::kAvx512Inputs;
constexpr Tiles<float, float> kAvx512Float[2] = {
    tiles_of<float, float, tiles::on_avx512::FloatTile, kAvx512Inputs, 2>(),
    tiles_of<float, float, tiles::on_avx512::FloatTile, kAvx512Inputs, 3>()};
constexpr Tiles<uint16_t, uint16_t> kAvx512Bf16[2] = {
    tiles_of<uint16_t, uint16_t, tiles::Avx512Bf16, kAvx512Inputs, 2>(),
    tiles_of<uint16_t, uint16_t, tiles::Avx512Bf16, kAvx512Inputs, 3>()};
constexpr Tiles<float, uint16_t> kAvx512Widened[2] = {
    tiles_of<float, uint16_t, tiles::on_avx512::WidenedTile, kAvx512Inputs, 2>(),
    tiles_of<float, uint16_t, tiles::on_avx512::WidenedTile, kAvx512Inputs, 3>()};
constexpr Tiles<float, float> kAvx2Float =
    tiles_of<float, float, tiles::on_avx2::FloatTile, kAvx2Inputs, kAvx2WeightRows>();
constexpr Tiles<float, uint16_t> kAvx2Widened =
    tiles_of<float, uint16_t, tiles::on_avx2::WidenedTile, kAvx2Inputs, kAvx2WeightRows>();

// x [M,K] (as the tiles take it) times every projection into its output [M, N_i]: blocks of
// kBlockRows weight rows over all projections, split over the threads.
template <typename X, typename W>
void run_blocks(const Tiles<X, W>& t, const X* x, int64_t M, int64_t K, const std::vector<Projection>& projections,
                std::vector<torch::Tensor>& outputs) {
  std::vector<int64_t> first_block{0};  // first block of each projection
  for (const Projection& p : projections) {
    first_block.push_back(first_block.back() + (p.weight.size(0) + kBlockRows - 1) / kBlockRows);
  }
  at::parallel_for(0, first_block.back(), 1, [&](int64_t begin, int64_t end) {
    size_t i = 0;
    for (int64_t b = begin; b < end; ++b) {
      while (b >= first_block[i + 1]) ++i;
      const Projection& p = projections[i];
      const int64_t N = p.weight.size(0), n0 = (b - first_block[i]) * kBlockRows;
      const float* bias = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
      row_range(t, x, M, K, static_cast<const W*>(p.weight.data_ptr()), bias, outputs[i].data_ptr<float>(), N, n0,
                std::min(N, n0 + kBlockRows));
    }
  });
}

}  // namespace

bool small_gemm_bf16_supported() {
  static const bool supported =
      cpu_has(Isa::kAvx512) && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
  return supported;
}

Bf16Sums bf16_sums() { return small_gemm_bf16_supported() ? Bf16Sums::kNative : Bf16Sums::kWidened; }

bool small_gemm_bf16_supported(Bf16Sums sums, Isa isa) {
  if (!cpu_has(isa)) return false;
  if (sums == Bf16Sums::kNative) return isa == Isa::kAvx512 && small_gemm_bf16_supported();
  return true;  // widened: every instruction set's tiles
}

bool small_gemm_applies(const torch::Tensor& x, const Projection& p, Bf16Sums sums, Isa isa) {
  const torch::Tensor& w = p.weight;
  if (!cpu_has(isa) || !is_cpu_float(x)) return false;
  if (!is_cpu_float(w) && !(is_cpu_bf16(w) && small_gemm_bf16_supported(sums, isa))) return false;
  if (x.requires_grad() || w.requires_grad() || x.dim() < 1 || w.dim() != 2 || !w.is_contiguous()) return false;
  if (x.size(-1) != w.size(1) || x.size(-1) == 0 || x.numel() / x.size(-1) > small_gemm_max_rows(isa)) return false;
  return bias_fits(p.bias, w.size(0));
}

std::vector<torch::Tensor> small_gemm(const torch::Tensor& x, const std::vector<Projection>& projections, Bf16Sums sums,
                                      Isa isa) {
  const bool bf16 = !projections.empty() && is_cpu_bf16(projections[0].weight);
  for (const Projection& p : projections) {
    if (!small_gemm_applies(x, p, sums, isa) || is_cpu_bf16(p.weight) != bf16) {
      throw ShapeError("small_gemm: operands do not fit the kernel: x " + std::to_string(x.dim()) + "-d with " +
                       std::to_string(x.numel()) + " elements, weight of " + std::to_string(p.weight.numel()));
    }
  }
  const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [M,K]
  const int64_t M = x2.size(0), K = x2.size(1);
  std::vector<torch::Tensor> outputs;
  for (const Projection& p : projections) outputs.push_back(torch::empty({M, p.weight.size(0)}, x2.options()));

  const bool avx2 = isa == Isa::kAvx2;
  const int three = avx512_weight_rows(M, K) == 3;  // index of the AVX-512 tiles
  if (!bf16) {
    run_blocks(avx2 ? kAvx2Float : kAvx512Float[three], x2.data_ptr<float>(), M, K, projections, outputs);
  } else if (sums == Bf16Sums::kWidened) {
    // x rounded to bf16 and widened back to float32.
    const torch::Tensor xr = x2.to(torch::kBFloat16).to(torch::kFloat32);
    run_blocks(avx2 ? kAvx2Widened : kAvx512Widened[three], xr.data_ptr<float>(), M, K, projections, outputs);
  } else {
    const torch::Tensor xr = x2.to(torch::kBFloat16);
    run_blocks(kAvx512Bf16[three], static_cast<const uint16_t*>(xr.data_ptr()), M, K, projections, outputs);
  }

  std::vector<torch::Tensor> shaped;
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = projections[i].weight.size(0);
    shaped.push_back(outputs[i].view(shape));
  }
  return shaped;
}

}  // namespace sf::kernels
