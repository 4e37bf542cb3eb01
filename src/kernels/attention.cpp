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
#include "kernels/avx2.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"

namespace sf::kernels {

namespace {

struct Strides {
  int64_t b, h, j;  // of a [B,heads,L,D] tensor (unit stride in D)
};

// ---- Many queries against the same keys (prompt and scoring passes) ----------------------------
//
// The query rows (query head, position) of one KV head, kBlockRows at a time, against keys
// transposed once per call into panels (d-major, 32 keys per vector pair): a score tile is an outer
// product, each key vector loaded once for all rows of the block and no lane sums taken. Then the
// softmax of each row as in `attend`, and Σ_j p_j v_j as outer products too (each value vector
// loaded once for the rows of a tile).

// Query rows scored together: one score tile of 12 rows × 2 vectors of keys on AVX-512 (24
// accumulators + 2 key vectors in 32 registers), two tiles of 6 rows on AVX2 (attention_math.inc).
constexpr int64_t kBlockRows = 12;
// Keys per panel of the transposed keys: one score tile's two vectors on AVX-512, two tiles on AVX2.
constexpr int64_t kPanel = 32;

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

// The arithmetic (attention_math.inc), compiled once per instruction set.
#define SF_ISA_MATH "kernels/attention_math.inc"
#include "kernels/each_isa.inc"

// One instruction set's functions of attention_math.inc.
struct Math {
  decltype(&on_avx512::attend) attend;
  decltype(&on_avx512::attend_block) attend_block;
  decltype(&on_avx512::exp_lanes) exp_lanes;
};

const Math& math(Isa isa) {
  static const Math avx512{on_avx512::attend, on_avx512::attend_block, on_avx512::exp_lanes};
  static const Math avx2{on_avx2::attend, on_avx2::attend_block, on_avx2::exp_lanes};
  return isa == Isa::kAvx512 ? avx512 : avx2;
}

bool cpu_float(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && !t.requires_grad() && t.stride(-1) == 1;
}

}  // namespace

bool attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& allowed, const torch::Tensor& present, Isa isa) {
  if (!cpu_has(isa) || q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || allowed.dim() != 3) return false;
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
                        const torch::Tensor& allowed, double scale, const torch::Tensor& present, Isa isa) {
  if (!attention_applies(q, k, v, allowed, present, isa)) {
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
  const Math& m = math(isa);
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
        m.attend_block(a, i0, i1, lo[static_cast<size_t>(x)], hi[static_cast<size_t>(x)], static_cast<float>(scale),
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
        m.attend(qp + b * q.stride(0) + g * rep * q.stride(1) + t * q.stride(2), q.stride(1), kp + b * ks.b + g * ks.h,
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

void exp16(const float* x, float* y, Isa isa) {
  if (!cpu_has(isa)) throw ShapeError(std::string("exp16: this CPU has no ") + isa_name(isa));
  math(isa).exp_lanes(x, y, 16);
}

}  // namespace sf::kernels
