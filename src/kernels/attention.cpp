#include "kernels/attention.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/small_gemm.hpp"

namespace sf::kernels {

namespace {

// Cephes expf: e^x = 2^n · e^r with n = round(x / ln 2), |r| <= ln(2)/2, e^r by a degree-7
// polynomial; 0 below -88 (where float underflows), as std::exp gives at float precision.
__attribute__((target("avx512f"), always_inline)) inline __m512 exp_ps(__m512 x) {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-88.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), _mm512_scalef_ps(p, n));
}

struct Strides {
  int64_t b, h, j;  // of a [B,heads,L,D] tensor (unit stride in D)
};

// One row b, one query position and one KV head: its `rep` query heads against key positions
// [0, L), allowed[j] saying which may be attended to.
__attribute__((target("avx512f"))) void attend(const float* q, int64_t q_head_stride, const float* k, const float* v,
                                               Strides ks, Strides vs, const bool* allowed, int64_t L, int64_t D,
                                               int64_t rep, float scale, float* out, std::vector<float>& scores) {
  // Leading positions that may not be attended to (a left-padded row's padding) add nothing: they
  // are skipped, so that the rest of such a row takes the unmasked path below. Unless none may be.
  const int64_t lo = std::find(allowed, allowed + L, true) - allowed;
  if (lo < L) {
    k += lo * ks.j;
    v += lo * vs.j;
    allowed += lo;
    L -= lo;
  }
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
    // p_j = e^(s_j - max); a masked position underflows to 0 unless every position is masked.
    __m512 total = _mm512_setzero_ps();
    const __m512 shift = _mm512_set1_ps(top);
    for (j = 0; j < L; j += 16) {
      const __mmask16 in = avx512::lanes(L - j);
      const __m512 p = _mm512_maskz_mov_ps(in, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, s + j), shift)));
      _mm512_mask_storeu_ps(s + j, in, p);
      total = _mm512_add_ps(total, p);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
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

bool cpu_float(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && !t.requires_grad() && t.stride(-1) == 1;
}

}  // namespace

bool attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& allowed) {
  if (!small_gemm_supported() || q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || allowed.dim() != 3) return false;
  if (!cpu_float(q) || !cpu_float(k) || !cpu_float(v)) return false;
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1), L = k.size(2);
  if (D % 16 != 0 || KV == 0 || H % KV != 0 || k.sizes() != v.sizes()) return false;
  if (k.size(0) != B || k.size(3) != D || L == 0 || T == 0) return false;
  return allowed.scalar_type() == torch::kBool && allowed.device().is_cpu() && allowed.size(0) == B &&
         allowed.size(1) == T && allowed.size(2) == L;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, double scale) {
  if (!attention_applies(q, k, v, allowed)) {
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
  float* op = out.data_ptr<float>();
  const Strides ks{k.stride(0), k.stride(1), k.stride(2)}, vs{v.stride(0), v.stride(1), v.stride(2)};
  // Tasks ordered so that query positions alternate from the front and the back: with causal masks
  // any contiguous range of tasks (one thread's share) holds about the same number of keys.
  at::parallel_for(0, groups * T, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / groups, b = (task % groups) / KV, g = task % KV;
      const int64_t t = i % 2 == 0 ? i / 2 : T - 1 - i / 2;
      const bool* row = mp + (b * T + t) * L;
      int64_t keys = L;  // up to the last allowed position; all L when none is allowed
      while (keys > 0 && !row[keys - 1]) --keys;
      if (keys == 0) keys = L;
      attend(qp + b * q.stride(0) + g * rep * q.stride(1) + t * q.stride(2), q.stride(1), kp + b * ks.b + g * ks.h,
             vp + b * vs.b + g * vs.h, ks, vs, row, keys, D, rep, static_cast<float>(scale),
             op + ((b * T + t) * H + g * rep) * D, scores);
    }
  });
  return out;
}

__attribute__((target("avx512f"))) void exp16(const float* x, float* y) {
  _mm512_storeu_ps(y, exp_ps(_mm512_loadu_ps(x)));
}

}  // namespace sf::kernels
