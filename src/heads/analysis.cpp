#include "heads/analysis.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"
#include "extract/logit_dataset.hpp"

namespace sf::heads {

CorrectionSummary mean_correction(const Head& head, const torch::Tensor& hidden, const torch::Tensor& base_topk_logits,
                                  const torch::Tensor& base_topk_ids) {
  torch::NoGradGuard no_grad;
  const int64_t v = head.vocab_size();
  const auto params = head.named_parameters();
  const torch::Device device = params.front().second.device();
  CorrectionSummary s;
  if (head.variant() == "bias") {
    const torch::Tensor b = params.front().second.to(torch::kCPU);
    s.mean = b - b.mean();
    const int64_t n = hidden.defined() ? hidden.size(0) : base_topk_ids.defined() ? base_topk_ids.size(0) : 1;
    s.counts = torch::full({v}, n, torch::kLong);
    return s;
  }
  if (head.variant() == "hidden") {
    if (!hidden.defined() || hidden.dim() != 2 || hidden.size(1) != head.hidden_size()) {
      throw ShapeError("head '" + head.spec().name + "': hidden states must be [N," +
                       std::to_string(head.hidden_size()) + "]");
    }
    const torch::Tensor dw = head.delta_weight();                             // [V,H]
    const torch::Tensor centred = dw - dw.mean(0, /*keepdim=*/true);          // [V,H]
    const torch::Tensor mean_h = hidden.to(device, torch::kFloat32).mean(0);  // [H]
    s.mean = hidden.size(0) > 0 ? torch::matmul(centred, mean_h).to(torch::kCPU) : torch::zeros({v});
    s.counts = torch::full({v}, hidden.size(0), torch::kLong);
    return s;
  }
  const int64_t k = head.spec().k;
  const torch::Tensor ids = base_topk_ids.narrow(1, 0, k).to(device, torch::kLong);  // [N,k]
  const torch::Tensor z = base_topk_logits.to(device, torch::kFloat32);
  const torch::Tensor gain = head.corrected_support(z, base_topk_ids.to(device)) - z.narrow(1, 0, k);  // [N,k]
  const torch::Tensor centred = gain - gain.mean(1, /*keepdim=*/true);
  const torch::Tensor sum = torch::zeros({v}, z.options()).index_add_(0, ids.reshape({-1}), centred.reshape({-1}));
  const torch::Tensor count =
      torch::zeros({v}, ids.options()).index_add_(0, ids.reshape({-1}), torch::ones_like(ids).reshape({-1}));
  s.mean = (sum / count.clamp_min(1).to(torch::kFloat32)).to(torch::kCPU);
  s.counts = count.to(torch::kCPU);
  return s;
}

CorrectionSummary mean_correction(const Head& head, const extract::LogitDataset& ds, int64_t max_positions) {
  const int64_t n = max_positions > 0 ? std::min(max_positions, ds.num_tokens()) : ds.num_tokens();
  constexpr int64_t kChunk = 4096;
  CorrectionSummary total;
  total.mean = torch::zeros({head.vocab_size()});
  total.counts = torch::zeros({head.vocab_size()}, torch::kLong);
  for (int64_t lo = 0; lo < n; lo += kChunk) {
    const extract::TokenRows r = ds.tokens(lo, std::min(kChunk, n - lo));
    const CorrectionSummary part = mean_correction(head, r.base_hidden, r.base_topk_logits, r.base_topk_ids);
    // Weighted running mean per token.
    const torch::Tensor both = (total.counts + part.counts).clamp_min(1).to(torch::kFloat32);
    total.mean = (total.mean * total.counts.to(torch::kFloat32) + part.mean * part.counts.to(torch::kFloat32)) / both;
    total.counts += part.counts;
  }
  return total;
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
