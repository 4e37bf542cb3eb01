#include "model/vocab_parallel.hpp"

#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/topk.hpp"

namespace sf::model {

namespace {

// The leading dimensions of x (all but the last).
std::vector<int64_t> lead_shape(const torch::Tensor& x) {
  std::vector<int64_t> s(x.sizes().begin(), x.sizes().end());
  s.pop_back();
  return s;
}

std::vector<int64_t> with_last(std::vector<int64_t> lead, int64_t last) {
  lead.push_back(last);
  return lead;
}

// Orders candidates [N,C] canonically (values descending, equal values by ascending id) and keeps
// the first k. Ids within a row are distinct.
TopK canonical_first(const torch::Tensor& values, const torch::Tensor& ids, int64_t k) {
  auto by_id = ids.sort(/*dim=*/-1);
  const torch::Tensor ids1 = std::get<0>(by_id);
  const torch::Tensor v1 = values.gather(-1, std::get<1>(by_id));
  // Stable: equal values keep their ascending-id order.
  auto by_value = torch::sort(v1, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  const torch::Tensor order = std::get<1>(by_value).narrow(-1, 0, k);
  return TopK{std::get<0>(by_value).narrow(-1, 0, k).contiguous(), ids1.gather(-1, order)};
}

}  // namespace

TopK topk(const torch::Tensor& x, int64_t k) {
  if (x.dim() < 1) throw ShapeError("topk: input must have at least one dimension");
  const int64_t V = x.size(-1);
  if (k < 0 || k > V) {
    throw ShapeError("topk: k = " + std::to_string(k) + " outside [0, " + std::to_string(V) + "]");
  }
  const std::vector<int64_t> lead = lead_shape(x);
  const torch::Tensor x2 = x.reshape({-1, V});  // [N,V]
  const int64_t N = x2.size(0);
  if (k == 0 || N == 0) {
    return TopK{torch::empty(with_last(lead, k), x.options()),
                torch::empty(with_last(lead, k), x.options().dtype(torch::kInt64))};
  }
  kernels::RowTopK fast;
  if (kernels::topk_rows(x2, k, fast)) {
    return TopK{fast.values.view(with_last(lead, k)), fast.ids.view(with_last(lead, k))};
  }
  auto tk = x2.topk(k, -1);
  torch::Tensor v = std::get<0>(tk), i = std::get<1>(tk);  // [N,k]
  // Rows where the k-th value is tied with an element that was left out: torch chose among the
  // ties arbitrarily. Keep every element above the k-th value and the lowest-id ties instead.
  const torch::Tensor kth = v.narrow(1, k - 1, 1);  // [N,1]
  const torch::Tensor over = ((x2 >= kth).sum(-1) > k).nonzero().select(1, 0);
  if (over.numel() > 0) {
    const int64_t M = over.size(0);
    const torch::Tensor xo = x2.index_select(0, over), ko = kth.index_select(0, over);  // [M,V] [M,1]
    const torch::Tensor gt = xo > ko, eq = xo == ko;
    const torch::Tensor need = k - gt.sum(-1, /*keepdim=*/true);                      // [M,1]
    const torch::Tensor keep = gt.logical_or(eq.logical_and(eq.cumsum(-1) <= need));  // k per row
    const torch::Tensor ids_o = keep.nonzero().select(1, 1).view({M, k});             // ascending
    v.index_copy_(0, over, xo.gather(1, ids_o));
    i.index_copy_(0, over, ids_o);
  }
  TopK out = canonical_first(v, i, k);
  return TopK{out.values.view(with_last(lead, k)), out.ids.view(with_last(lead, k))};
}

VocabParallel::VocabParallel(int64_t vocab_size) : VocabParallel(vocab_size, dist::Comm()) {}

VocabParallel::VocabParallel(int64_t vocab_size, dist::Comm group)
    : vocab_size_(vocab_size), range_(dist::split_range(vocab_size, group.size(), group.rank())), group_(group) {}

void VocabParallel::check(const torch::Tensor& x, const char* what) const {
  if (x.dim() < 1 || x.size(-1) != local_size()) {
    throw ShapeError(std::string(what) + ": expected [..., " + std::to_string(local_size()) +
                     "] (this rank's vocabulary slice), got " + c10::str(x.sizes()));
  }
}

torch::Tensor VocabParallel::logsumexp(const torch::Tensor& x) const {
  check(x, "logsumexp");
  if (!is_split()) return torch::logsumexp(x, -1);
  torch::Tensor m = x.amax(-1);  // [...]
  group_.allreduce_max(m);
  // Rows that are -inf everywhere: exp(-inf - 0) = 0, log 0 = -inf, as torch::logsumexp.
  const torch::Tensor shift = torch::where(torch::isinf(m), torch::zeros_like(m), m);
  torch::Tensor s = torch::exp(x - shift.unsqueeze(-1)).sum(-1);
  group_.allreduce_sum(s);
  return shift + torch::log(s);
}

torch::Tensor VocabParallel::log_softmax(const torch::Tensor& x) const {
  check(x, "log_softmax");
  if (!is_split()) return torch::log_softmax(x, -1);
  return x - logsumexp(x).unsqueeze(-1);
}

TopK VocabParallel::topk(const torch::Tensor& x, int64_t k) const {
  check(x, "topk");
  if (!is_split()) return model::topk(x, k);
  if (k < 0 || k > vocab_size_) {
    throw ShapeError("topk: k = " + std::to_string(k) + " outside [0, " + std::to_string(vocab_size_) + "]");
  }
  const std::vector<int64_t> lead = lead_shape(x);
  const torch::Tensor x2 = x.reshape({-1, local_size()});
  const int64_t N = x2.size(0);
  if (k == 0 || N == 0) return model::topk(torch::empty(with_last(lead, k), x.options()), k);
  // This rank's candidates, padded to k with (-inf, id V): sorted after every real id.
  const int64_t kl = std::min(k, local_size());
  const TopK local = model::topk(x2, kl);
  torch::Tensor cand = torch::empty({N, k, 2}, x.options().dtype(torch::kFloat64));
  cand.select(2, 0).fill_(-std::numeric_limits<double>::infinity());
  cand.select(2, 1).fill_(static_cast<double>(vocab_size_));
  // (value, id) in float64: exact for float32/bf16 values and for ids below 2^53.
  cand.select(2, 0).narrow(1, 0, kl).copy_(local.values);
  cand.select(2, 1).narrow(1, 0, kl).copy_(local.ids + begin());
  const torch::Tensor all = group_.allgather(cand).permute({1, 0, 2, 3}).reshape({N, -1, 2});  // [N,T·k,2]
  const TopK merged = canonical_first(all.select(2, 0), all.select(2, 1).to(torch::kInt64), k);
  return TopK{merged.values.to(x.scalar_type()).view(with_last(lead, k)), merged.ids.view(with_last(lead, k))};
}

torch::Tensor VocabParallel::argmax(const torch::Tensor& x) const {
  check(x, "argmax");
  if (!is_split()) return x.argmax(-1);
  const std::vector<int64_t> lead = lead_shape(x);
  const torch::Tensor x2 = x.reshape({-1, local_size()});
  const torch::Tensor a = x2.argmax(-1);  // [N], first maximum
  torch::Tensor cand =
      torch::stack({x2.gather(1, a.unsqueeze(1)).squeeze(1).to(torch::kFloat64), (a + begin()).to(torch::kFloat64)},
                   -1);                                   // [N,2]
  const torch::Tensor all = group_.allgather(cand);       // [T,N,2]
  const torch::Tensor best = all.select(2, 0).argmax(0);  // [N]: first (lowest-id) rank among equal maxima
  return all.select(2, 1).gather(0, best.unsqueeze(0)).squeeze(0).to(torch::kInt64).view(lead);
}

torch::Tensor VocabParallel::pick(const torch::Tensor& x, const torch::Tensor& ids) const {
  check(x, "pick");
  if (ids.sizes() != x.sizes().slice(0, x.dim() - 1)) {
    throw ShapeError("pick: ids " + c10::str(ids.sizes()) + " do not match the rows of " + c10::str(x.sizes()));
  }
  const torch::Tensor idx = ids.to(x.device(), torch::kInt64);
  if (!is_split()) return x.gather(-1, idx.unsqueeze(-1)).squeeze(-1);
  const torch::Tensor local = idx - begin();
  const torch::Tensor in = local.ge(0).logical_and(local.lt(local_size()));
  const torch::Tensor v = x.gather(-1, local.clamp(0, local_size() - 1).unsqueeze(-1)).squeeze(-1);
  torch::Tensor out = torch::where(in, v, torch::zeros_like(v));
  group_.allreduce_sum(out);
  return out;
}

torch::Tensor VocabParallel::gather(const torch::Tensor& x) const {
  check(x, "gather");
  if (!is_split()) return x;
  const std::vector<int64_t> lead = lead_shape(x);
  const torch::Tensor x2 = x.reshape({-1, local_size()});
  const int64_t width = (vocab_size_ + group_.size() - 1) / group_.size();  // the largest slice
  torch::Tensor padded = torch::zeros({x2.size(0), width}, x.options());
  padded.narrow(1, 0, local_size()).copy_(x2);
  const torch::Tensor all = group_.allgather(padded);  // [T,N,width]
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < group_.size(); ++r) {
    const dist::Range range = dist::split_range(vocab_size_, group_.size(), r);
    parts.push_back(all[r].narrow(1, 0, range.size()));
  }
  return torch::cat(parts, 1).view(with_last(lead, vocab_size_));
}

torch::Tensor VocabParallel::slice(const torch::Tensor& full) const {
  if (full.dim() < 1 || full.size(-1) != vocab_size_) {
    throw ShapeError("slice: expected [..., " + std::to_string(vocab_size_) + "], got " + c10::str(full.sizes()));
  }
  return full.narrow(-1, begin(), local_size());
}

torch::Tensor VocabParallel::rows(const torch::Tensor& full) const {
  if (full.dim() < 1 || full.size(0) != vocab_size_) {
    throw ShapeError("rows: expected [" + std::to_string(vocab_size_) + ", ...], got " + c10::str(full.sizes()));
  }
  return full.narrow(0, begin(), local_size());
}

void VocabParallel::scatter_(torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& values) const {
  check(x, "scatter_");
  if (ids.sizes() != values.sizes() || ids.dim() != x.dim() ||
      ids.sizes().slice(0, ids.dim() - 1) != x.sizes().slice(0, x.dim() - 1)) {
    throw ShapeError("scatter_: ids " + c10::str(ids.sizes()) + " and values " + c10::str(values.sizes()) +
                     " do not fit " + c10::str(x.sizes()));
  }
  if (!x.is_contiguous()) throw ShapeError("scatter_: the logits must be contiguous");
  const int64_t k = ids.size(-1);
  torch::Tensor x2 = x.view({-1, local_size()});                                             // [N,V_local]
  const torch::Tensor local = ids.to(x.device(), torch::kInt64).reshape({-1, k}) - begin();  // [N,k]
  const torch::Tensor in = local.ge(0).logical_and(local.lt(local_size()));
  const torch::Tensor rows = torch::arange(x2.size(0), local.options()).unsqueeze(1).expand_as(local);
  x2.index_put_({rows.masked_select(in), local.masked_select(in)},
                values.to(x.device(), x.scalar_type()).reshape({-1, k}).masked_select(in));
}

}  // namespace sf::model
