#include "kernels/attention.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"

namespace sf::kernels {

namespace {

// s_j = e^(s_j - top) for j < n, in place; returns their sum. A masked position (the lowest float)
// underflows to 0 unless every position is masked.
__attribute__((target("avx512f"))) float exp_shifted(float* s, int64_t n, float top) {
  __m512 total = _mm512_setzero_ps();
  const __m512 shift = _mm512_set1_ps(top);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = avx512::lanes(n - j);
    const __m512 p = _mm512_maskz_mov_ps(in, avx512::exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, s + j), shift)));
    _mm512_mask_storeu_ps(s + j, in, p);
    total = _mm512_add_ps(total, p);
  }
  return _mm512_reduce_add_ps(total);
}

struct Strides {
  int64_t b, h, j;  // of a [B,heads,L,D] tensor (unit stride in D)
};

// One row b, one query position and one KV head: its `rep` query heads against key positions
// [lo, L), allowed[j] saying which may be attended to. The positions before lo (a left-padded
// row's padding, which may not be attended to and would add nothing) are skipped, so that the rest
// of such a row takes the unmasked path below.
__attribute__((target("avx512f"))) void attend(const float* q, int64_t q_head_stride, const float* k, const float* v,
                                               Strides ks, Strides vs, const bool* allowed, int64_t lo, int64_t L,
                                               int64_t D, int64_t rep, float scale, float* out,
                                               std::vector<float>& scores) {
  k += lo * ks.j;
  v += lo * vs.j;
  allowed += lo;
  L -= lo;
  scores.resize(static_cast<size_t>(L + 16));
  const int64_t chunks = D / 16;
  const bool all_allowed = std::find(allowed, allowed + L, false) == allowed + L;
  for (int64_t r = 0; r < rep; ++r) {
    const float* qh = q + r * q_head_stride;
    float* s = scores.data();
    // Scores of 8 positions at a time, their lane sums taken together (sum8).
    int64_t j = 0;
    for (; j + 8 <= L; j += 8) {
      __m512 acc[8];
      for (int u = 0; u < 8; ++u) acc[u] = _mm512_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const __m512 qc = _mm512_loadu_ps(qh + 16 * c);
        for (int u = 0; u < 8; ++u) acc[u] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(k + (j + u) * ks.j + 16 * c), acc[u]);
      }
      avx512::sum8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7], s + j);
    }
    for (; j < L; ++j) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * c), _mm512_loadu_ps(k + j * ks.j + 16 * c), acc);
      s[j] = _mm512_reduce_add_ps(acc);
    }
    float top = std::numeric_limits<float>::lowest();
    if (all_allowed) {  // 16 at a time, masked lanes past L loaded as 0 and kept out of the max
      const __m512 sc = _mm512_set1_ps(scale);
      __m512 most = _mm512_set1_ps(top);
      for (j = 0; j < L; j += 16) {
        const __mmask16 in = avx512::lanes(L - j);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, s + j), sc);
        _mm512_mask_storeu_ps(s + j, in, v);
        most = _mm512_mask_max_ps(most, in, most, v);
      }
      top = _mm512_reduce_max_ps(most);
    } else {
      for (j = 0; j < L; ++j) {
        s[j] = allowed[j] ? s[j] * scale : std::numeric_limits<float>::lowest();
        top = std::max(top, s[j]);
      }
    }
    const __m512 inv = _mm512_set1_ps(1.0f / exp_shifted(s, L, top));
    // Σ_j p_j v_j, 8 vectors of the head dimension at a time.
    float* o = out + r * D;
    for (int64_t c0 = 0; c0 < chunks; c0 += 8) {
      const int64_t n = std::min<int64_t>(8, chunks - c0);
      __m512 acc[8];
      for (int u = 0; u < 8; ++u) acc[u] = _mm512_setzero_ps();
      for (j = 0; j < L; ++j) {
        if (s[j] == 0.0f) continue;
        const __m512 p = _mm512_set1_ps(s[j]);
        const float* vj = v + j * vs.j + 16 * c0;
        for (int u = 0; u < 8; ++u) {
          if (u < n) acc[u] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16 * u), acc[u]);
        }
      }
      for (int64_t u = 0; u < n; ++u) _mm512_storeu_ps(o + 16 * (c0 + u), _mm512_mul_ps(acc[u], inv));
    }
  }
}

// ---- Many queries against the same keys (prompt and scoring passes) ----------------------------
//
// The query rows (query head, position) of one KV head, kBlockRows at a time, against keys
// transposed once per call into panels (d-major, 32 keys per vector pair): a score tile is an outer
// product, each key vector loaded once for all rows of the block and no lane sums taken. Then the
// softmax of each row as in `attend`, and Σ_j p_j v_j as outer products too (each value vector
// loaded once for the rows of a tile).

constexpr int64_t kBlockRows = 12;  // query rows scored together: 12 × 2 accumulators + 2 key vectors
constexpr int64_t kPanel = 32;      // keys per score tile (two vectors)

// Keys [from, L) of one (row, KV head) as kt[d * Lp + j], Lp = L rounded up to kPanel, zeros beyond
// L; `from` a multiple of 16 (columns before it are not written).
void transpose_keys(const float* k, int64_t ks_j, int64_t from, int64_t L, int64_t D, int64_t Lp, float* kt) {
  for (int64_t j0 = from; j0 < Lp; j0 += 16) {
    for (int64_t d = 0; d < D; ++d) {
      float* dst = kt + d * Lp + j0;
      for (int64_t u = 0; u < 16; ++u) dst[u] = j0 + u < L ? k[(j0 + u) * ks_j + d] : 0.0f;
    }
  }
}

// s[m * lds + u] = Σ_d qt[d * kBlockRows + m] · kt[d * Lp + u] for MR rows and kPanel keys.
template <int MR>
__attribute__((target("avx512f"), always_inline)) inline void score_tile(const float* qt, const float* kt, int64_t Lp,
                                                                         int64_t D, float* s, int64_t lds) {
  __m512 acc[MR][2];
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const __m512 k0 = _mm512_loadu_ps(kt + d * Lp), k1 = _mm512_loadu_ps(kt + d * Lp + 16);
    const float* qd = qt + d * kBlockRows;
    for (int m = 0; m < MR; ++m) {
      const __m512 qm = _mm512_set1_ps(qd[m]);
      acc[m][0] = _mm512_fmadd_ps(qm, k0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(qm, k1, acc[m][1]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    _mm512_storeu_ps(s + m * lds, acc[m][0]);
    _mm512_storeu_ps(s + m * lds + 16, acc[m][1]);
  }
}

template <int MR = kBlockRows>
__attribute__((target("avx512f"))) void score_tile_of(int64_t mr, const float* qt, const float* kt, int64_t Lp,
                                                      int64_t D, float* s, int64_t lds) {
  if constexpr (MR > 1) {
    if (mr < MR) return score_tile_of<MR - 1>(mr, qt, kt, Lp, D, s, lds);
  }
  score_tile<MR>(qt, kt, Lp, D, s, lds);
}

// out[m * H*D + 16 c + lane] = inv[m] · Σ_{j<n} p[m * ldp + j] · v[j * vs_j + 16 c + lane] for MR rows
// and NV vectors of the head dimension.
template <int MR, int NV>
__attribute__((target("avx512f"), always_inline)) inline void value_tile(const float* p, int64_t ldp, int64_t n,
                                                                         const float* v, int64_t vs_j, const float* inv,
                                                                         float* out, int64_t ldo) {
  __m512 acc[MR][NV];
  for (int m = 0; m < MR; ++m) {
    for (int c = 0; c < NV; ++c) acc[m][c] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < n; ++j) {
    __m512 vj[NV];
    for (int c = 0; c < NV; ++c) vj[c] = _mm512_loadu_ps(v + j * vs_j + 16 * c);
    for (int m = 0; m < MR; ++m) {
      const __m512 pm = _mm512_set1_ps(p[m * ldp + j]);
      for (int c = 0; c < NV; ++c) acc[m][c] = _mm512_fmadd_ps(pm, vj[c], acc[m][c]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    const __m512 scale = _mm512_set1_ps(inv[m]);
    for (int c = 0; c < NV; ++c) _mm512_storeu_ps(out + m * ldo + 16 * c, _mm512_mul_ps(acc[m][c], scale));
  }
}

// Rows of one value tile: 24 accumulators at most, 8 rows at most.
constexpr int value_rows(int nv) { return std::min(8, 24 / nv); }

template <int NV, int MR = value_rows(NV)>
__attribute__((target("avx512f"))) void value_tile_of(int64_t mr, const float* p, int64_t ldp, int64_t n,
                                                      const float* v, int64_t vs_j, const float* inv, float* out,
                                                      int64_t ldo) {
  if constexpr (MR > 1) {
    if (mr < MR) return value_tile_of<NV, MR - 1>(mr, p, ldp, n, v, vs_j, inv, out, ldo);
  }
  value_tile<MR, NV>(p, ldp, n, v, vs_j, inv, out, ldo);
}

// Σ_j p_j v_j for `rows` rows (p row-major with ldp), all of the head dimension D, into out rows
// ldo apart (row m of the block goes to out + offset[m]).
__attribute__((target("avx512f"))) void values(const float* p, int64_t ldp, int64_t rows, int64_t n, const float* v,
                                               int64_t vs_j, int64_t D, const float* inv, float* out,
                                               const int64_t* offset) {
  // The rows of a block are not evenly spaced in out (heads of one position, then the next
  // position): each tile's rows go through a small contiguous buffer.
  float tile[8 * 64];
  for (int64_t c0 = 0; c0 < D; c0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(4, (D - c0) / 16));
    const int64_t step = value_rows(nv);
    for (int64_t m = 0; m < rows; m += step) {
      const int64_t mr = std::min(step, rows - m);
      const float* pm = p + m * ldp;
      const float* vm = v + c0;
      switch (nv) {
        case 4:
          value_tile_of<4>(mr, pm, ldp, n, vm, vs_j, inv + m, tile, 64);
          break;
        case 3:
          value_tile_of<3>(mr, pm, ldp, n, vm, vs_j, inv + m, tile, 64);
          break;
        case 2:
          value_tile_of<2>(mr, pm, ldp, n, vm, vs_j, inv + m, tile, 64);
          break;
        default:
          value_tile_of<1>(mr, pm, ldp, n, vm, vs_j, inv + m, tile, 64);
          break;
      }
      for (int64_t u = 0; u < mr; ++u) std::copy(tile + u * 64, tile + u * 64 + nv * 16, out + offset[m + u] + c0);
    }
  }
}

// One block of query rows of row b and KV head g: rows [i0, i1) of that head's T · rep rows, row i
// being position i / rep and query head g · rep + i % rep; keys [lo, hi) (lo a multiple of kPanel)
// hold every key a present row of the block may attend to.
struct Block {
  const float* q;  // query (b, head g·rep, position 0)
  int64_t q_head, q_pos;
  const float* kt;  // the keys of (b, g), transposed
  int64_t Lp;
  const float* v;  // values of (b, g)
  int64_t vs_j;
  const bool* allowed;  // allowed[b] [T,L]
  int64_t L, D, rep;
  float* out;  // out[b] [T, H*D], at head g·rep
  int64_t H;
};

struct Scratch {
  std::vector<float> qt, s;
  std::vector<float> inv;
  std::vector<int64_t> offset;
};

__attribute__((target("avx512f"))) void attend_block(const Block& a, int64_t i0, int64_t i1, int64_t lo, int64_t hi,
                                                     float scale, Scratch& w) {
  const int64_t rows = i1 - i0, D = a.D, L = a.L;
  w.offset.resize(static_cast<size_t>(rows));
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t i = i0 + m, t = i / a.rep, r = i % a.rep;
    w.offset[static_cast<size_t>(m)] = t * a.H * D + r * D;
  }
  const int64_t n = hi - lo, panels = (n + kPanel - 1) / kPanel, lds = panels * kPanel;
  w.qt.resize(static_cast<size_t>(D * kBlockRows));
  w.s.resize(static_cast<size_t>(rows * lds));
  w.inv.resize(static_cast<size_t>(rows));
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t i = i0 + m, t = i / a.rep, r = i % a.rep;
    const float* qm = a.q + r * a.q_head + t * a.q_pos;
    for (int64_t d = 0; d < D; ++d) w.qt[static_cast<size_t>(d * kBlockRows + m)] = qm[d];
  }
  for (int64_t pnl = 0; pnl < panels; ++pnl)
    score_tile_of(rows, w.qt.data(), a.kt + lo + pnl * kPanel, a.Lp, D, w.s.data() + pnl * kPanel, lds);
  // Softmax of each row over keys [lo, hi): scaled scores where allowed, the lowest float elsewhere.
  const __m512 sc = _mm512_set1_ps(scale), lowest = _mm512_set1_ps(std::numeric_limits<float>::lowest());
  for (int64_t m = 0; m < rows; ++m) {
    float* s = w.s.data() + m * lds;
    const bool* row = a.allowed + ((i0 + m) / a.rep) * L + lo;
    __m512 most = lowest;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j)));
      const __mmask16 in = _mm512_test_epi32_mask(bytes, bytes);
      const __m512 v = _mm512_mask_blend_ps(in, lowest, _mm512_mul_ps(_mm512_loadu_ps(s + j), sc));
      _mm512_storeu_ps(s + j, v);
      most = _mm512_max_ps(most, v);
    }
    float top = _mm512_reduce_max_ps(most);
    for (; j < n; ++j) {
      s[j] = row[j] ? s[j] * scale : std::numeric_limits<float>::lowest();
      top = std::max(top, s[j]);
    }
    w.inv[static_cast<size_t>(m)] = 1.0f / exp_shifted(s, n, top);
  }
  values(w.s.data(), lds, rows, n, a.v + lo * a.vs_j, a.vs_j, D, w.inv.data(), a.out, w.offset.data());
}

bool cpu_float(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && !t.requires_grad() && t.stride(-1) == 1;
}

}  // namespace

bool attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& allowed, const torch::Tensor& present) {
  if (!cpu_has(Isa::kAvx512) || q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || allowed.dim() != 3) return false;
  if (!cpu_float(q) || !cpu_float(k) || !cpu_float(v)) return false;
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1), L = k.size(2);
  if (D % 16 != 0 || KV == 0 || H % KV != 0 || k.sizes() != v.sizes()) return false;
  if (k.size(0) != B || k.size(3) != D || L == 0 || T == 0) return false;
  if (present.defined() && (present.dim() != 2 || present.scalar_type() != torch::kBool || !present.device().is_cpu() ||
                            present.size(0) != B || present.size(1) != T))
    return false;
  return allowed.scalar_type() == torch::kBool && allowed.device().is_cpu() && allowed.size(0) == B &&
         allowed.size(1) == T && allowed.size(2) == L;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, double scale, const torch::Tensor& present) {
  if (!attention_applies(q, k, v, allowed, present)) {
    throw ShapeError("attention: operands do not fit the kernel: q " + std::to_string(q.dim()) + "-d, k " +
                     std::to_string(k.dim()) + "-d, allowed " + std::to_string(allowed.dim()) + "-d");
  }
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1), L = k.size(2);
  const int64_t rep = H / KV, groups = B * KV;
  const torch::Tensor mask = allowed.contiguous();
  torch::Tensor out = torch::empty({B, T, H * D}, q.options().memory_format(torch::MemoryFormat::Contiguous));
  const float* qp = q.data_ptr<float>();
  const float *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const bool* mp = mask.data_ptr<bool>();
  const torch::Tensor held = present.defined() ? present.contiguous() : torch::Tensor();
  const bool* pp = held.defined() ? held.data_ptr<bool>() : nullptr;
  float* op = out.data_ptr<float>();
  const Strides ks{k.stride(0), k.stride(1), k.stride(2)}, vs{v.stride(0), v.stride(1), v.stride(2)};
  // Each query position's keys: from its first allowed one to one past its last ([0, L) when none is
  // allowed: such a query gets the mean of all values); an empty span for an absent position.
  std::vector<int64_t> first(static_cast<size_t>(B * T)), last(static_cast<size_t>(B * T));
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const bool* row = mp + bt * L;
    int64_t f = std::find(row, row + L, true) - row, l = L;
    if (f == L) {
      f = 0;
    } else {
      while (!row[l - 1]) --l;
    }
    if (pp && !pp[bt]) f = l = 0;
    first[static_cast<size_t>(bt)] = f;
    last[static_cast<size_t>(bt)] = l;
  }
  if (T * rep >= kBlockRows) {
    // Blocks of kBlockRows query rows of one (row b, KV head); each block's keys [lo, hi) cover its
    // present rows' spans. Row b's keys are transposed once per KV head from the least lo of its
    // blocks on. Threads take blocks from a shared counter: the (b, KV head) pairs with the most
    // keys first, the blocks of one pair one after another (its keys and values stay in cache),
    // the longest first within it (causal masks make late blocks long; padding makes some empty).
    const int64_t Lp = (L + kPanel - 1) / kPanel * kPanel, blocks = (T * rep + kBlockRows - 1) / kBlockRows;
    std::vector<int64_t> lo(static_cast<size_t>(B * blocks), L), hi(static_cast<size_t>(B * blocks), 0);
    std::vector<int64_t> from(static_cast<size_t>(B), Lp);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const size_t x = static_cast<size_t>(b * blocks + blk);
        const int64_t t0 = blk * kBlockRows / rep, t1 = (std::min(T * rep, (blk + 1) * kBlockRows) - 1) / rep + 1;
        for (int64_t t = t0; t < t1; ++t) {
          const size_t bt = static_cast<size_t>(b * T + t);
          if (first[bt] >= last[bt]) continue;
          lo[x] = std::min(lo[x], first[bt]);
          hi[x] = std::max(hi[x], last[bt]);
        }
        if (hi[x] == 0) continue;
        lo[x] -= lo[x] % kPanel;
        from[static_cast<size_t>(b)] = std::min(from[static_cast<size_t>(b)], lo[x]);
      }
    }
    const torch::Tensor kt = torch::empty({groups, D, Lp}, q.options());  // [B·KV, D, Lp]
    float* ktp = kt.data_ptr<float>();
    at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t grp = begin; grp < end; ++grp) {
        const int64_t b = grp / KV, g = grp % KV;
        transpose_keys(kp + b * ks.b + g * ks.h, ks.j, from[static_cast<size_t>(b)], L, D, Lp, ktp + grp * D * Lp);
      }
    });
    // task = (b · blocks + blk) · KV + g
    std::vector<int64_t> keys(lo.size(), 0), row_keys(static_cast<size_t>(B), 0);
    for (size_t x = 0; x < lo.size(); ++x) {
      keys[x] = hi[x] > 0 ? hi[x] - lo[x] : 0;
      row_keys[x / static_cast<size_t>(blocks)] += keys[x];
    }
    std::vector<int64_t> order(static_cast<size_t>(B * blocks * KV));
    std::iota(order.begin(), order.end(), 0);
    auto rank = [&](int64_t task) {
      const int64_t x = task / KV, b = x / blocks;
      return std::make_tuple(-row_keys[static_cast<size_t>(b)], b, task % KV, -keys[static_cast<size_t>(x)]);
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return rank(x) < rank(y); });
    std::atomic<int64_t> next{0};
    const auto tasks = static_cast<int64_t>(order.size());
    at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), tasks), 1, [&](int64_t, int64_t) {
      Scratch scratch;
      for (int64_t i = next++; i < tasks; i = next++) {
        const int64_t task = order[static_cast<size_t>(i)], x = task / KV, g = task % KV, b = x / blocks,
                      blk = x % blocks, grp = b * KV + g;
        const Block a{qp + b * q.stride(0) + g * rep * q.stride(1),
                      q.stride(1),
                      q.stride(2),
                      ktp + grp * D * Lp,
                      Lp,
                      vp + b * vs.b + g * vs.h,
                      vs.j,
                      mp + b * T * L,
                      L,
                      D,
                      rep,
                      op + b * T * H * D + g * rep * D,
                      H};
        const int64_t i0 = blk * kBlockRows, i1 = std::min(i0 + kBlockRows, T * rep);
        if (hi[static_cast<size_t>(x)] == 0) continue;  // no present row
        attend_block(a, i0, i1, lo[static_cast<size_t>(x)], hi[static_cast<size_t>(x)], static_cast<float>(scale),
                     scratch);
      }
    });
  } else {
    // Tasks (row, KV head, query position) longest first (by their keys), each thread taking the next
    // one when done: the rows of a decoding batch differ several-fold in length, and sorted slots
    // would give one thread's contiguous share all the long ones.
    std::vector<int64_t> order(static_cast<size_t>(B * T * KV));
    std::iota(order.begin(), order.end(), 0);  // task = bt · KV + g
    auto keys = [&](int64_t task) {
      const size_t bt = static_cast<size_t>(task / KV);
      return last[bt] - first[bt];
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return keys(x) > keys(y); });
    std::atomic<int64_t> next{0};
    const auto tasks = static_cast<int64_t>(order.size());
    at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), tasks), 1, [&](int64_t, int64_t) {
      std::vector<float> scores;
      for (int64_t i = next++; i < tasks; i = next++) {
        const int64_t task = order[static_cast<size_t>(i)], bt = task / KV, g = task % KV, b = bt / T, t = bt % T;
        if (last[static_cast<size_t>(bt)] == 0) continue;  // absent
        attend(qp + b * q.stride(0) + g * rep * q.stride(1) + t * q.stride(2), q.stride(1), kp + b * ks.b + g * ks.h,
               vp + b * vs.b + g * vs.h, ks, vs, mp + bt * L, first[static_cast<size_t>(bt)],
               last[static_cast<size_t>(bt)], D, rep, static_cast<float>(scale), op + (bt * H + g * rep) * D, scores);
      }
    });
  }
  // Absent positions' rows: zeros (neither way computes them, except beside present rows in a block).
  if (pp) {
    for (int64_t bt = 0; bt < B * T; ++bt) {
      if (!pp[bt]) std::fill_n(op + bt * H * D, static_cast<size_t>(H * D), 0.0f);
    }
  }
  return out;
}

__attribute__((target("avx512f"))) void exp16(const float* x, float* y) {
  _mm512_storeu_ps(y, avx512::exp_ps(_mm512_loadu_ps(x)));
}

}  // namespace sf::kernels
