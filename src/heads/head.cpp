#include "heads/head.hpp"

#include "core/error.hpp"
#include "heads/rng.hpp"
#include "heads/variant.hpp"

namespace sf::heads {

struct Head::State {
  HeadSpec spec;
  const Variant* variant = nullptr;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  torch::Device device = torch::kCPU;
  std::vector<std::pair<std::string, torch::Tensor>> params;  // fixed order
  Params by_name;                                             // the same tensors
};

namespace {

std::string who(const HeadSpec& spec) { return "head '" + spec.name + "'"; }

void check_device(const HeadSpec& spec, torch::Device head, const torch::Tensor& t, const char* what) {
  if (t.defined() && t.device() != head) {
    throw ShapeError(who(spec) + " lives on " + head.str() + " but its " + what + " are on " + t.device().str() +
                     " (every tensor of a unit must stay on the unit's device)");
  }
}

}  // namespace

void validate(const HeadSpec& spec, const std::string& where) { variant_of(spec.type, where).validate(spec, where); }

Head Head::init(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size, uint64_t seed, torch::Device device) {
  const Variant& v = variant_of(spec.type, who(spec));
  v.validate(spec, who(spec));
  if (vocab_size <= 0) throw ShapeError(who(spec) + ": vocab_size must be positive");
  if (v.uses_hidden() && hidden_size <= 0) throw ShapeError(who(spec) + ": hidden_size must be positive");
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const ParamShape& p : v.shapes(spec, vocab_size, v.uses_hidden() ? hidden_size : 0))
    params.emplace_back(p.name, v.initial(p, spec, seed));
  return from_params(spec, vocab_size, hidden_size, std::move(params), who(spec), device);
}

Head Head::from_params(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size,
                       std::vector<std::pair<std::string, torch::Tensor>> params, const std::string& where,
                       torch::Device device) {
  auto s = std::make_shared<State>();
  s->spec = spec;
  s->variant = &variant_of(spec.type, where);
  s->variant->validate(spec, where);
  s->vocab_size = vocab_size;
  s->hidden_size = s->variant->uses_hidden() ? hidden_size : 0;
  s->device = device;
  const auto expected = s->variant->shapes(spec, vocab_size, s->hidden_size);
  if (expected.size() != params.size())
    throw FormatError(where + ": a " + spec.type + " head has " + std::to_string(expected.size()) +
                      " parameters, got " + std::to_string(params.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    auto& [name, t] = params[i];
    if (name != expected[i].name)
      throw FormatError(where + ": parameter " + std::to_string(i) + " is '" + name + "', expected '" +
                        expected[i].name + "'");
    if (t.sizes() != c10::IntArrayRef(expected[i].shape))
      throw FormatError(where + ": tensor '" + name + "' has shape " + c10::str(t.sizes()) + ", expected " +
                        c10::str(c10::IntArrayRef(expected[i].shape)));
    t = t.to(device, torch::kFloat32);
    s->by_name[name] = t;
  }
  s->params = std::move(params);
  return Head(std::move(s));
}

torch::Tensor Head::apply(const torch::Tensor& logits, const torch::Tensor& hidden) const {
  return apply(logits, hidden, model::VocabParallel(s_->vocab_size));
}

torch::Tensor Head::apply(const torch::Tensor& logits, const torch::Tensor& hidden,
                          const model::VocabParallel& vocab) const {
  const State& s = *s_;
  if (vocab.vocab_size() != s.vocab_size)
    throw ShapeError(who(s.spec) + ": trained for a vocabulary of " + std::to_string(s.vocab_size) +
                     ", applied to one of " + std::to_string(vocab.vocab_size()));
  if (logits.dim() != 2 || logits.size(1) != vocab.local_size()) {
    throw ShapeError(who(s.spec) + ": logits must be [N," + std::to_string(vocab.local_size()) + "], got " +
                     c10::str(logits.sizes()));
  }
  check_device(s.spec, s.device, logits, "logits");
  if (s.variant->uses_hidden()) check_device(s.spec, s.device, hidden, "hidden states");
  return s.variant->apply(s.by_name, s.spec, logits.to(torch::kFloat32), hidden, vocab);
}

torch::Tensor Head::support(const torch::Tensor& logits) const {
  check_device(s_->spec, s_->device, logits, "logits");
  return s_->variant->support(s_->spec, logits);
}

bool Head::uses_hidden() const { return s_->variant->uses_hidden(); }

torch::Tensor Head::delta_weight() const {
  const State& s = *s_;
  if (s.spec.type != "hidden")
    throw ConfigError(who(s.spec) + ": a " + s.spec.type + " head has no ΔW (only hidden heads do)");
  if (s.spec.rank == 0) return s.by_name.at("delta_weight");
  return torch::matmul(s.by_name.at("delta_u"), s.by_name.at("delta_v").t());  // [V,H]
}

const std::vector<std::pair<std::string, torch::Tensor>>& Head::named_parameters() const { return s_->params; }
const HeadSpec& Head::spec() const { return s_->spec; }
const std::string& Head::type() const { return s_->spec.type; }
int64_t Head::vocab_size() const { return s_->vocab_size; }
int64_t Head::hidden_size() const { return s_->hidden_size; }
torch::Device Head::device() const { return s_->device; }

}  // namespace sf::heads
