#include "heads/loss.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace sf::heads {

torch::Tensor kl_topk_rows(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs) {
  if (teacher_logits.dim() != 2 || student_logprobs.sizes() != teacher_logits.sizes()) {
    throw ShapeError("kl_topk: teacher logits " + c10::str(teacher_logits.sizes()) + " and student log-probs " +
                     c10::str(student_logprobs.sizes()) + " must both be [N,k]");
  }
  const torch::Tensor logp = torch::log_softmax(teacher_logits.to(torch::kFloat32), 1);  // [N,k]
  return (logp.exp() * (logp - student_logprobs.to(torch::kFloat32))).sum(1);            // [N]
}

torch::Tensor logprobs_at(const torch::Tensor& logits, const torch::Tensor& ids) {
  if (logits.dim() != 2 || ids.dim() != 2 || ids.size(0) != logits.size(0)) {
    throw ShapeError("logprobs_at: logits " + c10::str(logits.sizes()) + " must be [N,V] and ids " +
                     c10::str(ids.sizes()) + " [N,k]");
  }
  return torch::log_softmax(logits.to(torch::kFloat32), 1).gather(1, ids.to(torch::kLong));  // [N,k]
}

torch::Tensor positions_in_support(const torch::Tensor& ids, const torch::Tensor& support_ids) {
  if (ids.dim() != 2 || support_ids.dim() != 2 || ids.size(0) != support_ids.size(0)) {
    throw ShapeError("positions_in_support: ids " + c10::str(ids.sizes()) + " and support " +
                     c10::str(support_ids.sizes()) + " must be [N,ka] and [N,kb]");
  }
  const int64_t n = ids.size(0);
  const int64_t kb = support_ids.size(1);
  torch::Tensor out = torch::full(ids.sizes(), -1, ids.options().dtype(torch::kLong));
  if (n == 0 || kb == 0) return out;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, ids.size(1) * kb));
  const torch::Tensor cols = torch::arange(kb, out.options());  // [kb]
  for (int64_t lo = 0; lo < n; lo += chunk) {
    const int64_t len = std::min(chunk, n - lo);
    const torch::Tensor a = ids.narrow(0, lo, len).to(torch::kLong).unsqueeze(2);          // [c,ka,1]
    const torch::Tensor b = support_ids.narrow(0, lo, len).to(torch::kLong).unsqueeze(1);  // [c,1,kb]
    const torch::Tensor eq = a.eq(b);                                                      // [c,ka,kb]
    // Column of the first match, or -1: where no match, any() is false.
    const torch::Tensor col = torch::where(eq, cols, torch::full({}, kb, out.options())).amin(2);  // [c,ka]
    out.narrow(0, lo, len).copy_(torch::where(col.eq(kb), torch::full({}, -1, out.options()), col));
  }
  return out;
}

int64_t top1_matches(const torch::Tensor& predicted, const torch::Tensor& teacher_top1) {
  if (predicted.dim() != 1 || teacher_top1.sizes() != predicted.sizes()) {
    throw ShapeError("top1: predicted " + c10::str(predicted.sizes()) + " and teacher " +
                     c10::str(teacher_top1.sizes()) + " must both be [N]");
  }
  return predicted.to(torch::kLong).eq(teacher_top1.to(torch::kLong)).sum().item<int64_t>();
}

}  // namespace sf::heads
