#include "heads/loss.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace sf::heads {

torch::Tensor kl_topk_rows(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs,
                           const torch::Tensor& mask) {
  if (teacher_logits.dim() != 2 || student_logprobs.sizes() != teacher_logits.sizes()) {
    throw ShapeError("kl_topk: teacher logits " + c10::str(teacher_logits.sizes()) + " and student log-probs " +
                     c10::str(student_logprobs.sizes()) + " must both be [N,k]");
  }
  if (mask.defined() && mask.sizes() != teacher_logits.sizes()) {
    throw ShapeError("kl_topk: mask " + c10::str(mask.sizes()) + " must be " + c10::str(teacher_logits.sizes()));
  }
  const torch::Tensor t = teacher_logits.to(torch::kFloat32);
  torch::Tensor logq = student_logprobs.to(torch::kFloat32);
  if (!mask.defined()) {
    const torch::Tensor logp = torch::log_softmax(t, 1);  // [N,k]
    return (logp.exp() * (logp - logq)).sum(1);           // [N]
  }
  const torch::Tensor keep = mask.to(torch::kBool);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const torch::Tensor any = keep.any(1, /*keepdim=*/true);  // [N,1]
  // Rows with no kept entry: keep everything for the arithmetic, then zero the row.
  const torch::Tensor keep_safe = keep.logical_or(any.logical_not());
  const torch::Tensor logp = torch::log_softmax(t.masked_fill(keep_safe.logical_not(), neg_inf), 1);  // [N,k]
  const torch::Tensor zero = torch::zeros({}, logq.options());
  // torch::where keeps the gradient of the dropped branch at zero, and the 0 replaces -inf/NaN.
  const torch::Tensor diff = torch::where(keep, logp - torch::where(keep, logq, zero), zero);
  return (logp.exp() * diff).sum(1);  // [N]
}

torch::Tensor kl_topk_loss(const torch::Tensor& teacher_logits, const torch::Tensor& student_logprobs,
                           const torch::Tensor& mask) {
  const torch::Tensor rows = kl_topk_rows(teacher_logits, student_logprobs, mask);
  if (rows.size(0) == 0) return rows.sum();
  return rows.mean();
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

double top1_agreement(const torch::Tensor& predicted, const torch::Tensor& teacher_top1) {
  const int64_t n = predicted.numel();
  const int64_t m = top1_matches(predicted, teacher_top1);
  return n == 0 ? 0.0 : static_cast<double>(m) / static_cast<double>(n);
}

}  // namespace sf::heads
