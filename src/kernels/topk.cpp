#include "kernels/topk.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

struct Entry {
  float value;
  int64_t id;
};

// The canonical order: larger value first, then the lower index.
bool before(const Entry& a, const Entry& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); }

// Row x [V] → its best k entries in canonical order; false if it holds a NaN. The candidates start
// as the first k elements; an element joins them when it exceeds the threshold, the k-th best so
// far (an equal one comes later, so it ranks below the k held ones); every 4k candidates they are
// cut back to the best k and the threshold rises.
__attribute__((target("avx512f"))) bool row_topk(const float* x, int64_t V, int64_t k, std::vector<Entry>& cand,
                                                 float* values, int64_t* ids) {
  const auto cut = [&] {
    std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), before);
    cand.resize(static_cast<size_t>(k));
    return std::max_element(cand.begin(), cand.end(), before)->value;  // the last in canonical order
  };
  cand.clear();
  for (int64_t j = 0; j < k; ++j) {
    if (x[j] != x[j]) return false;
    cand.push_back({x[j], j});
  }
  float threshold = cut();
  const size_t full = static_cast<size_t>(4 * k);
  for (int64_t j = k; j < V; j += 16) {
    const __mmask16 lanes = avx512::lanes(V - j);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + j);
    if (_mm512_mask_cmp_ps_mask(lanes, v, v, _CMP_UNORD_Q)) return false;
    __mmask16 over = _mm512_mask_cmp_ps_mask(lanes, v, _mm512_set1_ps(threshold), _CMP_GT_OQ);
    while (over) {
      const int lane = __builtin_ctz(over);
      over = static_cast<__mmask16>(over & (over - 1));
      const int64_t id = j + lane;
      if (!(x[id] > threshold)) continue;  // the threshold rose within this step
      cand.push_back({x[id], id});
      if (cand.size() == full) threshold = cut();
    }
  }
  std::sort(cand.begin(), cand.end(), before);
  for (int64_t i = 0; i < k; ++i) {
    values[i] = cand[static_cast<size_t>(i)].value;
    ids[i] = cand[static_cast<size_t>(i)].id;
  }
  return true;
}

}  // namespace

bool topk_rows(const torch::Tensor& x, int64_t k, RowTopK& out) {
  if (!cpu_has(Isa::kAvx512) || !cpu_float_contiguous(x) || x.dim() != 2 || k < 1 || k > x.size(1)) return false;
  const int64_t N = x.size(0), V = x.size(1);
  torch::Tensor values = torch::empty({N, k}, x.options());
  torch::Tensor ids = torch::empty({N, k}, x.options().dtype(torch::kInt64));
  const float* xp = x.data_ptr<float>();
  float* vp = values.data_ptr<float>();
  int64_t* ip = ids.data_ptr<int64_t>();
  std::atomic<bool> finite{true};
  // Rows are cheap (a few microseconds): several per unit of parallel work.
  at::parallel_for(0, N, 8, [&](int64_t begin, int64_t end) {
    std::vector<Entry> cand;
    cand.reserve(static_cast<size_t>(4 * k));
    for (int64_t r = begin; r < end && finite.load(std::memory_order_relaxed); ++r) {
      if (!row_topk(xp + r * V, V, k, cand, vp + r * k, ip + r * k)) finite.store(false, std::memory_order_relaxed);
    }
  });
  if (!finite.load()) return false;
  out = {values, ids};
  return true;
}

}  // namespace sf::kernels
