#pragma once
// The one objective every head is trained and judged by, computed through the same Head::apply
// that generation and scoring use:
//   z = h·Wᵀ                     the base logits, from the stored final hidden state h and lm_head W
//   q = softmax(head.apply(z, h)) over the full vocabulary (the served distribution)
//   KL(p ‖ q) = Σ_j p_j (log p_j − log q_j) over the aligned model's k stored ids, p = softmax of
//               its stored top-k logits
// which is what the reference's nn.KLDivLoss("batchmean") computes on log_softmax(pred) against
// the aligned top-k softmax scattered into a zero vector.
#include <torch/torch.h>

#include "heads/head.hpp"

namespace sf::heads {

// Training positions on the unit's device.
struct PositionBatch {
  torch::Tensor hidden;          // [n,H] float32, the base's final hidden state
  torch::Tensor aligned_logits;  // [n,ka] float32, the teacher's top-k logits, descending
  torch::Tensor aligned_ids;     // [n,ka] int64
};

struct RowStats {
  torch::Tensor kl;        // [n] KL(p ‖ q), differentiable in the head's parameters
  torch::Tensor top1;      // [n] the student's argmax id
  torch::Tensor coverage;  // [n] teacher mass on the base top-k support (support_k > 0), else undefined
};

// head == nullptr: the base alone (q = softmax(z)). support_k > 0: also the coverage of the base's
// top-`support_k` ids. lm_head_weight [V,H] on the batch's device.
RowStats objective_rows(const Head* head, const PositionBatch& batch, const torch::Tensor& lm_head_weight,
                        int64_t support_k = 0);

}  // namespace sf::heads
