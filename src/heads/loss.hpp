#pragma once
// The distillation loss and agreement measures used to train and judge heads.
//
// Teacher: the aligned model stored only its k largest logits per position, so its distribution
// is p = softmax over those k logits (renormalised over the entries kept by `mask`).
// Student: log q at the same ids, where q is the student's own distribution: the full-vocabulary
// softmax of (base logits + head) for hidden and bias heads, the softmax over the base top-k
// support for bb heads. The loss is
//   KL(p ‖ q) = Σ_j p_j (log p_j − log q_j)   summed over the teacher's k ids of a row,
// averaged over rows (positions). This is what the reference's nn.KLDivLoss("batchmean") computes
// on log_softmax(pred) against the aligned top-k softmax scattered into a zero vector: ids outside
// the teacher's top-k carry no target mass and so add nothing.
#include <torch/torch.h>

#include <cstdint>

namespace sf::heads {

// Per-row KL(p ‖ q). teacher_logits [N,k] float; student_logprobs [N,k] = log q at the teacher's
// ids; mask [N,k] bool (optional): entries to keep, p is renormalised over them and the others
// contribute nothing (their student value may be anything, -inf included). Rows with no kept entry
// give 0. Returns [N] float32, differentiable in student_logprobs.
torch::Tensor kl_topk_rows(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs,
                           const torch::Tensor& mask = {});

// Mean of kl_topk_rows over rows (0 for N = 0).
torch::Tensor kl_topk_loss(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs,
                           const torch::Tensor& mask = {});

// Full-vocabulary log-softmax of logits [N,V] gathered at ids [N,k] → [N,k].
torch::Tensor logprobs_at(const torch::Tensor& logits, const torch::Tensor& ids);

// For each of ids [N,ka], its column in support_ids [N,kb] (same row), or -1 when absent → [N,ka]
// int64. Used to express the teacher's top-k within a bb head's base top-k support. Rows are
// processed in chunks so memory stays at O(chunk·ka·kb).
torch::Tensor positions_in_support(const torch::Tensor& ids, const torch::Tensor& support_ids);

// Number of rows whose predicted id equals the teacher's top-1 id. predicted [N], teacher_top1 [N].
int64_t top1_matches(const torch::Tensor& predicted, const torch::Tensor& teacher_top1);

// top1_matches / N (0 for N = 0).
double top1_agreement(const torch::Tensor& predicted, const torch::Tensor& teacher_top1);

}  // namespace sf::heads
