#pragma once
// Which tokens a head promotes or demotes (for the reduce report).
//
// The correction a head adds at one position, c = apply(z, h) − z, is only meaningful up to a
// constant (softmax is shift-invariant), so it is centred first: by its mean over the vocabulary
// for heads that act on every id, by its mean over the base top-k support for heads that act on
// the support only (bb). The summary is, per token, the mean centred correction over the
// positions where the head acts on it; tokens it never acts on get 0 and a count of 0.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "heads/head.hpp"
#include "heads/positions.hpp"

namespace sf::heads {

struct TokenShift {
  int64_t id = 0;
  double mean_correction = 0;  // in logits (nats of unnormalised log-probability)
  int64_t positions = 0;       // positions that contributed
};

struct CorrectionSummary {
  torch::Tensor mean;    // [V] float32 (CPU), mean centred correction per token
  torch::Tensor counts;  // [V] int64 (CPU), positions that contributed per token
};

// Over the first `max_positions` positions of `set` (0: all), in order. lm_head_weight [V,H] on
// the head's device.
CorrectionSummary mean_correction(const Head& head, const PositionSet& set, const torch::Tensor& lm_head_weight,
                                  int64_t max_positions = 0);

// The n tokens with the largest (promoted) and smallest (demoted) mean correction, among tokens
// with at least one contributing position, largest magnitude first.
std::pair<std::vector<TokenShift>, std::vector<TokenShift>> top_shifts(const CorrectionSummary& s, int64_t n);

}  // namespace sf::heads
