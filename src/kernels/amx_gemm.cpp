#include "kernels/amx_gemm.hpp"

#include <ATen/Parallel.h>
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/operands.hpp"
#include "kernels/small_gemm.hpp"

namespace sf::kernels {

namespace {

constexpr int64_t kTileRows = 16;  // rows of x (and of weight pairs) in a tile
constexpr int64_t kTileOut = 16;   // outputs (float32 columns) of a result tile
constexpr int64_t kTileIn = 32;    // inputs (bf16) of a tile row
constexpr int64_t kTileElems = kTileRows * kTileIn;
// Tiles of x rows per unit of parallel work: 128 rows, whose bf16 copy (256 KiB at K = 1024) stays
// in L2 while the unit's weight tiles pass.
constexpr int64_t kRowBlockTiles = 8;

// CPUID leaf 7 EDX: AMX-BF16 (bit 22), AMX-TILE (24); the OS enabled the tile state in XCR0 (bits 17
// and 18); Linux grants this process the tile data (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
bool amx_usable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE: xgetbv may run
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// Palette 1, all eight tiles 16 rows of 64 bytes: 0-3 results (16 × 16 float32), 4-5 rows of x
// (16 × 32 bf16), 6-7 weights (16 pairs × 16 outputs).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

TileConfig full_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = kTileRows;
  }
  return cfg;
}

#define SF_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

// 16 sums rounded to bf16 (to nearest even), back in float32.
SF_AMX inline __m512 round_bf16(__m512 v) {
  const __m256i r = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(r), 16));
}

// Result tile c [16,16] → rows [0, rows) and columns [0, cols) of y: each sum rounded to bf16, then
// the bias added.
SF_AMX void store_tile(const float* c, int64_t rows, int64_t cols, const float* bias, float* y, int64_t ldy) {
  const __mmask16 lanes = avx512::lanes(cols);
  const __m512 b = bias ? _mm512_maskz_loadu_ps(lanes, bias) : _mm512_setzero_ps();
  for (int64_t i = 0; i < rows; ++i)
    _mm512_mask_storeu_ps(y + i * ldy, lanes, _mm512_add_ps(round_bf16(_mm512_load_ps(c + i * kTileOut)), b));
}

// Result tiles g and u [16,16] of the same outputs of two products → rows [0, rows) and columns
// [0, cols) of y: silu(g) ⊙ u, g and u each rounded to bf16 first, silu(g) = g / (1 + e^(−g)).
SF_AMX void store_swiglu_tile(const float* g, const float* u, int64_t rows, int64_t cols, float* y, int64_t ldy) {
  const __mmask16 lanes = avx512::lanes(cols);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const __m512 gv = round_bf16(_mm512_load_ps(g + i * kTileOut));
    const __m512 uv = round_bf16(_mm512_load_ps(u + i * kTileOut));
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(one, avx512::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(y + i * ldy, lanes, _mm512_mul_ps(silu, uv));
  }
}

// MT tiles of x rows (a, a + 16 rows) times NT weight tiles (w0, w1) over kt steps of 32 inputs,
// the results into c[0..3] (x tile i, weight tile j → c[2i + j]).
template <int MT, int NT>
SF_AMX void multiply(const uint16_t* a, int64_t lda, const uint16_t* w0, const uint16_t* w1, int64_t kt,
                     float (*c)[kTileRows * kTileOut]) {
  const int64_t stride = lda * static_cast<int64_t>(sizeof(uint16_t));
  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MT == 2) _tile_zero(2);
  if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  for (int64_t k = 0; k < kt; ++k) {
    _tile_loadd(4, a + k * kTileIn, stride);
    if constexpr (MT == 2) _tile_loadd(5, a + kTileRows * lda + k * kTileIn, stride);
    _tile_loadd(6, w0 + k * kTileElems, 64);
    if constexpr (NT == 2) _tile_loadd(7, w1 + k * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NT == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MT == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (MT == 2 && NT == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c[0], 64);
  if constexpr (NT == 2) _tile_stored(1, c[1], 64);
  if constexpr (MT == 2) _tile_stored(2, c[2], 64);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, c[3], 64);
}

struct Job {
  const uint16_t* x;  // [Mp, Kp] bf16, zero padded to whole tiles
  int64_t M, Mp, Kp;
};

// Rows [m0, m1) of the padded x (whole tiles) times weight tiles [n, n + nt) (nt = 1 or 2)
// of one projection into y [M, N].
SF_AMX void unit(const Job& job, const AmxProjection& p, float* y, int64_t m0, int64_t m1, int64_t n, int64_t nt) {
  const AmxWeight& w = *p.weight;
  const int64_t kt = w.tiles.size(1);
  const auto* tiles = reinterpret_cast<const uint16_t*>(w.tiles.data_ptr<at::BFloat16>());
  const uint16_t* w0 = tiles + n * kt * kTileElems;
  const uint16_t* w1 = w0 + kt * kTileElems;
  const float* bias = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
  alignas(64) float c[4][kTileRows * kTileOut];
  for (int64_t m = m0; m < m1; m += 2 * kTileRows) {
    const bool two_rows = m + kTileRows < m1;
    const uint16_t* a = job.x + m * job.Kp;
    if (two_rows) {
      nt == 2 ? multiply<2, 2>(a, job.Kp, w0, w1, kt, c) : multiply<2, 1>(a, job.Kp, w0, w1, kt, c);
    } else {
      nt == 2 ? multiply<1, 2>(a, job.Kp, w0, w1, kt, c) : multiply<1, 1>(a, job.Kp, w0, w1, kt, c);
    }
    for (int64_t i = 0; i < (two_rows ? 2 : 1); ++i) {
      const int64_t r0 = m + i * kTileRows, rows = std::min(kTileRows, job.M - r0);
      if (rows <= 0) continue;
      for (int64_t j = 0; j < nt; ++j) {
        const int64_t col = (n + j) * kTileOut, cols = std::min(kTileOut, w.out - col);
        store_tile(c[2 * i + j], rows, cols, bias ? bias + col : nullptr, y + r0 * w.out + col, w.out);
      }
    }
  }
}

// Rows [m0, m1) of the padded x times tile n of gate and of up (the same 16 outputs) into y [M, N]
// as silu(gate) ⊙ up.
SF_AMX void swiglu_unit(const Job& job, const AmxWeight& gate, const AmxWeight& up, float* y, int64_t m0, int64_t m1,
                        int64_t n) {
  const int64_t kt = gate.tiles.size(1);
  const uint16_t* g = reinterpret_cast<const uint16_t*>(gate.tiles.data_ptr<at::BFloat16>()) + n * kt * kTileElems;
  const uint16_t* u = reinterpret_cast<const uint16_t*>(up.tiles.data_ptr<at::BFloat16>()) + n * kt * kTileElems;
  const int64_t col = n * kTileOut, cols = std::min(kTileOut, gate.out - col);
  alignas(64) float c[4][kTileRows * kTileOut];
  for (int64_t m = m0; m < m1; m += 2 * kTileRows) {
    const bool two_rows = m + kTileRows < m1;
    const uint16_t* a = job.x + m * job.Kp;
    two_rows ? multiply<2, 2>(a, job.Kp, g, u, kt, c) : multiply<1, 2>(a, job.Kp, g, u, kt, c);
    for (int64_t i = 0; i < (two_rows ? 2 : 1); ++i) {
      const int64_t r0 = m + i * kTileRows, rows = std::min(kTileRows, job.M - r0);
      if (rows > 0) store_swiglu_tile(c[2 * i], c[2 * i + 1], rows, cols, y + r0 * gate.out + col, gate.out);
    }
  }
}

SF_AMX void load_tile_config(const TileConfig& cfg) { _tile_loadconfig(&cfg); }
SF_AMX void release_tiles() { _tile_release(); }

}  // namespace

bool amx_gemm_supported() {
  static const bool supported = small_gemm_bf16_supported() && amx_usable();
  return supported;
}

AmxWeight amx_pack(const torch::Tensor& weight) {
  if (weight.dim() != 2 || !weight.device().is_cpu() || !weight.is_floating_point())
    throw ShapeError("amx_pack: expected a floating-point matrix on the CPU, got " + std::to_string(weight.dim()) +
                     "-d");
  const int64_t N = weight.size(0), K = weight.size(1);
  const int64_t nt = (N + kTileOut - 1) / kTileOut, kt = (K + kTileIn - 1) / kTileIn;
  torch::Tensor padded = torch::zeros({nt * kTileOut, kt * kTileIn}, weight.options().dtype(torch::kBFloat16));
  padded.narrow(0, 0, N).narrow(1, 0, K).copy_(weight);
  // padded[16n + j][32k + 2r + p] → tiles[n][k][r][2j + p]
  const torch::Tensor tiles =
      padded.view({nt, kTileOut, kt, kTileRows, 2}).permute({0, 2, 3, 1, 4}).contiguous().view({nt, kt, kTileRows, 32});
  return {tiles, N, K};
}

namespace {

// x [..., K] as the kernels read it: checked (ShapeError naming `what`), rounded to bf16, zero padded
// to whole tiles ([Mp,Kp], kept alive in `xb`).
Job rounded_rows(const torch::Tensor& x, const char* what, torch::Tensor& xb) {
  const auto refuse = [&](const std::string& why) { throw ShapeError(std::string(what) + ": " + why); };
  if (!amx_gemm_supported()) refuse("this CPU or OS has no AMX-BF16");
  if (!is_cpu_float(x) || x.dim() < 1 || x.size(-1) == 0 || x.requires_grad())
    refuse("x must be a float32 CPU tensor [..., K] with K > 0, without autograd");
  const int64_t K = x.size(-1);
  const torch::Tensor x2 = x.reshape({-1, K});  // [M,K]
  const int64_t M = x2.size(0);
  const int64_t Mp = (M + kTileRows - 1) / kTileRows * kTileRows, Kp = (K + kTileIn - 1) / kTileIn * kTileIn;
  xb = torch::empty({Mp, Kp}, x.options().dtype(torch::kBFloat16));
  if (Mp > M || Kp > K) xb.zero_();
  xb.narrow(0, 0, M).narrow(1, 0, K).copy_(x2);
  return {reinterpret_cast<const uint16_t*>(xb.data_ptr<at::BFloat16>()), M, Mp, Kp};
}

// y [M, N] viewed with x's leading dimensions: [..., N].
torch::Tensor like_rows_of(const torch::Tensor& y, const torch::Tensor& x) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = y.size(1);
  return y.view(shape);
}

}  // namespace

std::vector<torch::Tensor> amx_gemm(const torch::Tensor& x, const std::vector<AmxProjection>& projections) {
  const auto refuse = [&](const std::string& why) { throw ShapeError("amx_gemm: " + why); };
  torch::Tensor xb;
  const Job job = rounded_rows(x, "amx_gemm", xb);
  const int64_t K = x.size(-1), M = job.M, Mp = job.Mp;
  for (const AmxProjection& p : projections) {
    if (!p.weight || !p.weight->tiles.defined() || p.weight->in != K)
      refuse("a weight's inputs (" + std::to_string(p.weight ? p.weight->in : 0) + ") differ from x's K (" +
             std::to_string(K) + ")");
    if (p.bias.defined() &&
        (!is_cpu_float(p.bias) || p.bias.dim() != 1 || p.bias.size(0) != p.weight->out || !p.bias.is_contiguous()))
      refuse("a bias is not a contiguous float32 [N] of its weight's " + std::to_string(p.weight->out) + " outputs");
  }

  // Units: a block of rows × a pair of weight tiles of one projection, row blocks outermost.
  std::vector<torch::Tensor> outputs;
  std::vector<int64_t> first_pair{0};  // first pair of each projection within a row block
  for (const AmxProjection& p : projections) {
    outputs.push_back(torch::empty({M, p.weight->out}, x.options()));
    first_pair.push_back(first_pair.back() + (p.weight->tiles.size(0) + 1) / 2);
  }
  const int64_t pairs = first_pair.back(), block = kRowBlockTiles * kTileRows;
  const int64_t blocks = (Mp + block - 1) / block;
  static const TileConfig cfg = full_tiles();
  at::parallel_for(0, blocks * pairs, 1, [&](int64_t begin, int64_t end) {
    load_tile_config(cfg);
    for (int64_t u = begin; u < end; ++u) {
      const int64_t b = u / pairs, pr = u % pairs;
      const auto i =
          static_cast<size_t>(std::upper_bound(first_pair.begin(), first_pair.end(), pr) - first_pair.begin() - 1);
      const int64_t nt = projections[i].weight->tiles.size(0), n = 2 * (pr - first_pair[i]);
      unit(job, projections[i], outputs[i].data_ptr<float>(), b * block, std::min(Mp, (b + 1) * block), n,
           std::min<int64_t>(2, nt - n));
    }
    release_tiles();
  });
  for (torch::Tensor& y : outputs) y = like_rows_of(y, x);
  return outputs;
}

torch::Tensor amx_swiglu(const torch::Tensor& x, const AmxWeight& gate, const AmxWeight& up) {
  torch::Tensor xb;
  const Job job = rounded_rows(x, "amx_swiglu", xb);
  const int64_t K = x.size(-1);
  for (const AmxWeight* w : {&gate, &up}) {
    if (!w->tiles.defined() || w->in != K || w->out != gate.out)
      throw ShapeError("amx_swiglu: gate (" + std::to_string(gate.out) + " × " + std::to_string(gate.in) +
                       ") and up (" + std::to_string(up.out) + " × " + std::to_string(up.in) +
                       ") must be packed, of one shape, with x's K (" + std::to_string(K) + ")");
  }
  torch::Tensor y = torch::empty({job.M, gate.out}, x.options());
  const int64_t tiles = gate.tiles.size(0), block = kRowBlockTiles * kTileRows;
  const int64_t blocks = (job.Mp + block - 1) / block;
  static const TileConfig cfg = full_tiles();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, blocks * tiles, 1, [&](int64_t begin, int64_t end) {
    load_tile_config(cfg);
    for (int64_t u = begin; u < end; ++u) {
      const int64_t b = u / tiles;
      swiglu_unit(job, gate, up, yp, b * block, std::min(job.Mp, (b + 1) * block), u % tiles);
    }
    release_tiles();
  });
  return like_rows_of(y, x);
}

}  // namespace sf::kernels
