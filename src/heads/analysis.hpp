#pragma once
// Which tokens a head promotes or demotes (for the reduce report).
//
// The correction a head adds at one position is only meaningful up to a constant (softmax is
// shift-invariant), so it is centred first: c − mean(c), the mean over the vocabulary (hidden,
// bias) or over the base top-k support (bb). The mean centred correction per token is then
//   hidden  (ΔW − 1·mean_rows(ΔW))·h̄   with h̄ the mean hidden state over the positions (exact,
//           the correction is linear in h)
//   bias    b − mean(b)                 (no data needed; counts = positions given, or 1 if none)
//   bb      for each id, the mean of its centred correction over the positions where it is in the
//           base top-k support; ids never in the support get 0 and a count of 0
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "heads/head.hpp"

namespace sf::extract {
class LogitDataset;
}

namespace sf::heads {

struct TokenShift {
  int64_t id = 0;
  double mean_correction = 0;  // in logits (nats of unnormalised log-probability)
  int64_t positions = 0;       // positions that contributed (bb: where the id was in the support)
};

struct CorrectionSummary {
  torch::Tensor mean;    // [V] float32, mean centred correction per token
  torch::Tensor counts;  // [V] int64, positions that contributed per token
};

// From tensors: hidden [N,H] (hidden heads), base top-k logits/ids [N,k'] (bb heads); the inputs a
// variant does not use may be undefined.
CorrectionSummary mean_correction(const Head& head, const torch::Tensor& hidden, const torch::Tensor& base_topk_logits,
                                  const torch::Tensor& base_topk_ids);

// From a logit dataset, reading at most `max_positions` positions from the start (0: all).
CorrectionSummary mean_correction(const Head& head, const extract::LogitDataset& ds, int64_t max_positions = 0);

// The n tokens with the largest (promoted) and smallest (demoted) mean correction, among tokens
// with at least one contributing position, largest magnitude first.
std::pair<std::vector<TokenShift>, std::vector<TokenShift>> top_shifts(const CorrectionSummary& s, int64_t n);

}  // namespace sf::heads
