#include "kernels/topk.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/avx2.hpp"
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

// The scan (topk_math.inc), compiled once per instruction set.
#define SF_ISA_MATH "kernels/topk_math.inc"
#include "kernels/each_isa.inc"

}  // namespace

bool topk_rows(const torch::Tensor& x, int64_t k, RowTopK& out, Isa isa) {
  if (!cpu_has(isa) || !cpu_float_contiguous(x) || x.dim() != 2 || k < 1 || k > x.size(1)) return false;
  const int64_t N = x.size(0), V = x.size(1);
  torch::Tensor values = torch::empty({N, k}, x.options());
  torch::Tensor ids = torch::empty({N, k}, x.options().dtype(torch::kInt64));
  const float* xp = x.data_ptr<float>();
  float* vp = values.data_ptr<float>();
  int64_t* ip = ids.data_ptr<int64_t>();
  const auto row_topk = isa == Isa::kAvx512 ? on_avx512::row_topk : on_avx2::row_topk;
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
