#include "heads/head.hpp"

#include <cmath>

#include "core/error.hpp"
#include "heads/head_impl.hpp"
#include "heads/rng.hpp"

namespace sf::heads {

void validate(const HeadSpec& spec, const std::string& where) {
  if (spec.variant == "hidden") {
    if (spec.rank < 0) throw ConfigError(where + ": rank must be >= 0 (0 = dense ΔW)");
    if (spec.k != 0) throw ConfigError(where + ": k applies to bb heads only");
  } else if (spec.variant == "bb") {
    if (spec.rank <= 0) throw ConfigError(where + ": bb heads need rank > 0");
    if (spec.k <= 0) throw ConfigError(where + ": bb heads need k > 0");
  } else if (spec.variant == "bias") {
    if (spec.rank != 0 || spec.k != 0) throw ConfigError(where + ": bias heads take neither rank nor k");
  } else {
    throw ConfigError(where + ": unknown head type '" + spec.variant + "' (expected hidden, bb or bias)");
  }
}

torch::Tensor Head::Impl::param(const std::string& name) const {
  for (const auto& [n, t] : params) {
    if (n == name) return t;
  }
  throw ShapeError("head '" + spec.name + "': no parameter " + name);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Head::Impl::expected_shapes(const HeadSpec& spec, int64_t V,
                                                                                      int64_t H) {
  if (spec.variant == "hidden" && spec.rank == 0) return {{"delta_weight", {V, H}}};
  if (spec.variant == "hidden") return {{"delta_u", {V, spec.rank}}, {"delta_v", {H, spec.rank}}};
  if (spec.variant == "bb") return {{"bb_in", {V, spec.rank}}, {"bb_out", {V, spec.rank}}, {"bb_bias", {V}}};
  return {{"bias", {V}}};
}

Head Head::init(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size, uint64_t seed, torch::Device device) {
  validate(spec, "head '" + spec.name + "'");
  if (vocab_size <= 0) throw ShapeError("head '" + spec.name + "': vocab_size must be positive");
  const bool uses_hidden = spec.variant == "hidden";
  if (uses_hidden && hidden_size <= 0) throw ShapeError("head '" + spec.name + "': hidden_size must be positive");
  auto impl = std::make_shared<Impl>();
  impl->spec = spec;
  impl->vocab_size = vocab_size;
  impl->hidden_size = uses_hidden ? hidden_size : 0;
  for (const auto& [name, shape] : Impl::expected_shapes(spec, vocab_size, impl->hidden_size)) {
    torch::Tensor t;
    if (name == "delta_v") {
      // Random so that U (zero) receives a gradient; scaled so that h·V is O(|h|/√H).
      t = normal_tensor(shape, 1.0 / std::sqrt(static_cast<double>(hidden_size)), mix_seed(seed, 1));
    } else if (name == "bb_in") {
      t = normal_tensor(shape, 1.0, mix_seed(seed, 2));
    } else {
      t = torch::zeros(shape, torch::kFloat32);
    }
    impl->params.emplace_back(name, t.to(device));
  }
  return Head(std::move(impl));
}

torch::Tensor Head::apply(const torch::Tensor& base_logits, const torch::Tensor& hidden) const {
  const Impl& m = *impl_;
  const std::string who = "head '" + m.spec.name + "'";
  if (base_logits.dim() != 2 || base_logits.size(1) != m.vocab_size) {
    throw ShapeError(who + ": base logits must be [N," + std::to_string(m.vocab_size) + "], got " +
                     c10::str(base_logits.sizes()));
  }
  if (m.spec.variant == "bias") return base_logits + m.param("bias").to(base_logits.dtype());
  if (m.spec.variant == "bb") {
    if (m.spec.k > m.vocab_size) throw ShapeError(who + ": k exceeds the vocabulary");
    auto [values, ids] = base_logits.topk(m.spec.k, /*dim=*/1);  // [N,k], descending
    torch::Tensor corrected = corrected_support(values.to(torch::kFloat32), ids);
    return base_logits.scatter(1, ids, corrected.to(base_logits.dtype()));
  }
  if (!hidden.defined() || hidden.dim() != 2 || hidden.size(0) != base_logits.size(0) ||
      hidden.size(1) != m.hidden_size) {
    throw ShapeError(who + ": hidden must be [" + std::to_string(base_logits.size(0)) + "," +
                     std::to_string(m.hidden_size) + "], got " +
                     (hidden.defined() ? c10::str(hidden.sizes()) : std::string("undefined")));
  }
  const torch::Tensor h = hidden.to(torch::kFloat32);
  torch::Tensor correction;  // [N,V]
  if (m.spec.rank == 0) {
    correction = torch::matmul(h, m.param("delta_weight").t());
  } else {
    correction = torch::matmul(torch::matmul(h, m.param("delta_v")), m.param("delta_u").t());
  }
  return base_logits + correction.to(base_logits.dtype());
}

torch::Tensor Head::corrected_logits(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight) const {
  const Impl& m = *impl_;
  const std::string who = "head '" + m.spec.name + "'";
  if (m.spec.variant == "bb") throw ConfigError(who + ": bb heads see only the base top-k (use corrected_support)");
  if (lm_head_weight.dim() != 2 || lm_head_weight.size(0) != m.vocab_size ||
      (m.hidden_size > 0 && lm_head_weight.size(1) != m.hidden_size)) {
    throw ShapeError(who + ": lm_head weight " + c10::str(lm_head_weight.sizes()) + " does not fit vocab " +
                     std::to_string(m.vocab_size) + " / hidden " + std::to_string(m.hidden_size));
  }
  if (hidden.dim() != 2 || hidden.size(1) != lm_head_weight.size(1)) {
    throw ShapeError(who + ": hidden " + c10::str(hidden.sizes()) + " does not fit lm_head weight " +
                     c10::str(lm_head_weight.sizes()));
  }
  if (m.spec.variant == "bias") return torch::matmul(hidden, lm_head_weight.t()) + m.param("bias");  // [N,V]
  if (m.spec.rank == 0) {
    // One matmul with W + ΔW: cheaper than two when N > 1.
    return torch::matmul(hidden, (lm_head_weight + m.param("delta_weight")).t());  // [N,V]
  }
  return torch::matmul(hidden, lm_head_weight.t()) +
         torch::matmul(torch::matmul(hidden, m.param("delta_v")), m.param("delta_u").t());  // [N,V]
}

torch::Tensor Head::corrected_support(const torch::Tensor& topk_logits, const torch::Tensor& topk_ids) const {
  const Impl& m = *impl_;
  const std::string who = "head '" + m.spec.name + "'";
  if (m.spec.variant != "bb") throw ConfigError(who + ": only bb heads act on the base top-k support");
  const int64_t k = m.spec.k;
  if (topk_logits.dim() != 2 || topk_ids.sizes() != topk_logits.sizes() || topk_logits.size(1) < k) {
    throw ShapeError(who + ": base top-k logits/ids must be [N,k'] with k' >= " + std::to_string(k) + ", got " +
                     c10::str(topk_logits.sizes()) + " and " + c10::str(topk_ids.sizes()));
  }
  const int64_t n = topk_logits.size(0);
  const torch::Tensor z = topk_logits.narrow(1, 0, k);                                // [N,k]
  const torch::Tensor ids = topk_ids.narrow(1, 0, k).reshape({-1}).to(torch::kLong);  // [N·k]
  if (n > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= m.vocab_size)) {
    throw ShapeError(who + ": base top-k ids out of range [0," + std::to_string(m.vocab_size) + ")");
  }
  const int64_t r = m.spec.rank;
  const torch::Tensor p = torch::softmax(z, 1);                                      // [N,k]
  const torch::Tensor in = m.param("bb_in").index_select(0, ids).view({n, k, r});    // [N,k,r]
  const torch::Tensor out = m.param("bb_out").index_select(0, ids).view({n, k, r});  // [N,k,r]
  const torch::Tensor context = torch::bmm(p.unsqueeze(1), in);                      // [N,1,r]
  const torch::Tensor gain = torch::bmm(out, context.transpose(1, 2)).squeeze(2);    // [N,k]
  return z + gain + m.param("bb_bias").index_select(0, ids).view({n, k});            // [N,k]
}

torch::Tensor Head::delta_weight() const {
  const Impl& m = *impl_;
  if (m.spec.variant != "hidden") {
    throw ConfigError("head '" + m.spec.name + "': a " + m.spec.variant + " head has no ΔW (only hidden heads do)");
  }
  if (m.spec.rank == 0) return m.param("delta_weight");
  return torch::matmul(m.param("delta_u"), m.param("delta_v").t());  // [V,H]
}

std::vector<std::pair<std::string, torch::Tensor>> Head::named_parameters() const { return impl_->params; }
const std::string& Head::variant() const { return impl_->spec.variant; }
const HeadSpec& Head::spec() const { return impl_->spec; }
int64_t Head::vocab_size() const { return impl_->vocab_size; }
int64_t Head::hidden_size() const { return impl_->hidden_size; }
const std::map<std::string, std::string>& Head::metadata() const { return impl_->metadata; }

}  // namespace sf::heads
