#pragma once
// The pieces of the distillation objective (heads/objective.hpp puts them together).
//
// Teacher: the aligned model stored only its k largest logits per position, so its distribution
// is p = softmax over those k logits. Student: log q at the same ids. ids outside the teacher's
// top-k carry no target mass and so add nothing.
#include <torch/torch.h>

#include <cstdint>

namespace sf::heads {

// Per-row KL(p ‖ q). teacher_logits [N,k] float; student_logprobs [N,k] = log q at the teacher's
// ids. Returns [N] float32, differentiable in student_logprobs.
torch::Tensor kl_topk_rows(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs);

// Full-vocabulary log-softmax of logits [N,V] gathered at ids [N,k] → [N,k].
torch::Tensor logprobs_at(const torch::Tensor& logits, const torch::Tensor& ids);

// For each of ids [N,ka], its column in support_ids [N,kb] (same row), or -1 when absent → [N,ka]
// int64. Rows are processed in chunks so memory stays at O(chunk·ka·kb).
torch::Tensor positions_in_support(const torch::Tensor& ids, const torch::Tensor& support_ids);

// Number of rows whose predicted id equals the teacher's top-1 id. predicted [N], teacher_top1 [N].
int64_t top1_matches(const torch::Tensor& predicted, const torch::Tensor& teacher_top1);

}  // namespace sf::heads
