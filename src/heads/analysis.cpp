#include "heads/analysis.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace sf::heads {

CorrectionSummary mean_correction(const Head& head, const PositionSet& set, const torch::Tensor& w,
                                  int64_t max_positions) {
  torch::NoGradGuard no_grad;
  const int64_t v = head.vocab_size();
  const torch::Device device = head.device();
  const int64_t limit = max_positions > 0 ? std::min(max_positions, set.size()) : set.size();
  torch::Tensor sum = torch::zeros({v}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  torch::Tensor count = torch::zeros({v}, torch::TensorOptions().dtype(torch::kLong).device(device));
  constexpr int64_t kChunk = 512;
  for (int64_t b = 0; b * kBlockPositions < limit; ++b) {
    const Window win = set.read_blocks({b});
    const int64_t rows = std::min(win.size(), limit - b * kBlockPositions);
    for (int64_t lo = 0; lo < rows; lo += kChunk) {
      const torch::Tensor h = win.hidden.slice(0, lo, std::min(rows, lo + kChunk)).to(device, torch::kFloat32);
      const torch::Tensor z = torch::matmul(h, w.t());  // [n,V]
      const torch::Tensor c = head.apply(z, h) - z;     // [n,V]
      const torch::Tensor support = head.support(z);    // [n,k] or undefined
      if (support.defined()) {
        const torch::Tensor cs = c.gather(1, support);  // [n,k]
        const torch::Tensor centred = cs - cs.mean(1, /*keepdim=*/true);
        sum.index_add_(0, support.reshape({-1}), centred.reshape({-1}));
        count.index_add_(0, support.reshape({-1}), torch::ones_like(support).reshape({-1}));
      } else {
        sum += (c - c.mean(1, /*keepdim=*/true)).sum(0);
        count += c.size(0);
      }
    }
  }
  return {(sum / count.clamp_min(1).to(torch::kFloat32)).to(torch::kCPU), count.to(torch::kCPU)};
}

std::pair<std::vector<TokenShift>, std::vector<TokenShift>> top_shifts(const CorrectionSummary& s, int64_t n) {
  const torch::Tensor seen = s.counts.gt(0);
  const int64_t available = seen.sum().item<int64_t>();
  const int64_t m = std::min(n, available);
  const float inf = std::numeric_limits<float>::infinity();
  auto pick = [&](bool largest) {
    const torch::Tensor masked = s.mean.masked_fill(seen.logical_not(), largest ? -inf : inf);
    const auto [values, ids] = masked.topk(m, 0, largest);
    std::vector<TokenShift> out;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t id = ids[i].item<int64_t>();
      out.push_back({id, values[i].item<double>(), s.counts[id].item<int64_t>()});
    }
    return out;
  };
  return {pick(true), pick(false)};
}

}  // namespace sf::heads
