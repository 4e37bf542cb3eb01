#include "heads/objective.hpp"

#include "core/error.hpp"
#include "heads/loss.hpp"

namespace sf::heads {

RowStats objective_rows(const Head* head, const PositionBatch& b, const torch::Tensor& w, int64_t support_k) {
  if (!b.hidden.defined() || b.hidden.dim() != 2 || w.dim() != 2 || b.hidden.size(1) != w.size(1))
    throw ShapeError("objective: hidden states " + (b.hidden.defined() ? c10::str(b.hidden.sizes()) : "undefined") +
                     " do not fit lm_head " + c10::str(w.sizes()));
  const torch::Tensor z = torch::matmul(b.hidden, w.t());            // [n,V]
  const torch::Tensor logits = head ? head->apply(z, b.hidden) : z;  // [n,V]
  RowStats r;
  r.kl = kl_topk_rows(b.aligned_logits, logprobs_at(logits, b.aligned_ids));  // [n]
  r.top1 = logits.argmax(1);                                                  // [n]
  if (support_k > 0) {
    const torch::NoGradGuard no_grad;
    const torch::Tensor support = std::get<1>(z.topk(std::min(support_k, z.size(1)), 1));  // [n,k]
    const torch::Tensor inside = positions_in_support(b.aligned_ids, support).ge(0);       // [n,ka]
    const torch::Tensor p = torch::softmax(b.aligned_logits.to(torch::kFloat32), 1);       // [n,ka]
    r.coverage = (p * inside.to(torch::kFloat32)).sum(1);                                  // [n]
  }
  return r;
}

}  // namespace sf::heads
