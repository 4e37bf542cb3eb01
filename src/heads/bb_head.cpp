// The `bb` head: a low-rank re-weighting of the base's top-k support that keeps the support's
// total mass (see head.hpp). Only logits inside the support change, and only relative to each
// other, which is exactly what its training objective can see.
#include <cmath>
#include <utility>

#include "core/error.hpp"
#include "heads/rng.hpp"
#include "heads/variant.hpp"

namespace sf::heads {
namespace {

void check_support(const HeadSpec& spec, int64_t vocab_size) {
  if (spec.k > vocab_size)
    throw ShapeError("head '" + spec.name + "': k = " + std::to_string(spec.k) + " exceeds the vocabulary (" +
                     std::to_string(vocab_size) + ")");
}

// The base's top-k [N,k] (values, global ids): torch's top-k of whole logits (as in training), or
// the group's merged top-k of split logits (model/vocab_parallel.hpp; identical on every rank, equal
// values ordered by id, so a tie at the k-th value may pick another id than the whole-vocabulary
// top-k does).
std::pair<torch::Tensor, torch::Tensor> base_topk(const torch::Tensor& logits, int64_t k,
                                                  const model::VocabParallel& vocab) {
  if (!vocab.is_split()) {
    auto [z, ids] = logits.topk(k, /*dim=*/1);
    return {z, ids};
  }
  model::TopK t = vocab.topk(logits, k);
  return {t.values, t.ids};
}

class BbVariant final : public Variant {
 public:
  void validate(const HeadSpec& spec, const std::string& where) const override {
    if (spec.rank <= 0) throw ConfigError(where + ": bb heads need rank > 0");
    if (spec.k <= 0) throw ConfigError(where + ": bb heads need k > 0");
    if (spec.init != "zero" && spec.init != "random")
      throw ConfigError(where + ": init must be zero or random, got '" + spec.init + "'");
  }

  std::vector<ParamShape> shapes(const HeadSpec& spec, int64_t vocab, int64_t) const override {
    return {{"bb_in", {vocab, spec.rank}}, {"bb_out", {vocab, spec.rank}}, {"bb_bias", {vocab}}};
  }

  torch::Tensor initial(const ParamShape& p, const HeadSpec& spec, uint64_t seed) const override {
    if (p.name == "bb_in") return normal_tensor(p.shape, 1.0, mix_seed(seed, 2));
    if (p.name == "bb_out" && spec.init == "random") return linear_uniform(p.shape, spec.rank, mix_seed(seed, 3));
    return torch::zeros(p.shape, torch::kFloat32);
  }

  torch::Tensor apply(const Params& p, const HeadSpec& spec, const torch::Tensor& logits, const torch::Tensor&,
                      const model::VocabParallel& vocab) const override {
    check_support(spec, vocab.vocab_size());
    const int64_t n = logits.size(0), k = spec.k, r = spec.rank;
    const auto [z, ids] = base_topk(logits, k, vocab);                               // [N,k] descending
    const torch::Tensor flat = ids.reshape({-1});                                    // [N·k]
    const torch::Tensor prob = torch::softmax(z, 1);                                 // [N,k]
    const torch::Tensor in = p.at("bb_in").index_select(0, flat).view({n, k, r});    // [N,k,r]
    const torch::Tensor out = p.at("bb_out").index_select(0, flat).view({n, k, r});  // [N,k,r]
    const torch::Tensor context = torch::bmm(prob.unsqueeze(1), in);                 // [N,1,r]
    const torch::Tensor gain =
        torch::bmm(out, context.transpose(1, 2)).squeeze(2) + p.at("bb_bias").index_select(0, flat).view({n, k});
    // Same total mass on the support as the base: logsumexp over S is unchanged.
    const torch::Tensor served = torch::log_softmax(z + gain, 1) + torch::logsumexp(z, 1, /*keepdim=*/true);  // [N,k]
    if (!vocab.is_split()) return logits.scatter(1, ids, served);                                             // [N,V]
    torch::Tensor local = logits.clone();  // [N,V_local]: the support ids this rank holds are replaced
    vocab.scatter_(local, ids, served);
    return local;
  }

  torch::Tensor support(const HeadSpec& spec, const torch::Tensor& logits) const override {
    check_support(spec, logits.size(1));
    return std::get<1>(logits.topk(spec.k, 1));  // [N,k]
  }
};

class BbLinearVariant final : public Variant {
 public:
  void validate(const HeadSpec& spec, const std::string& where) const override {
    if (spec.rank < 0) throw ConfigError(where + ": rank must be >= 0 (0 = dense V×V map, as the reference)");
    if (spec.k <= 0) throw ConfigError(where + ": bb_linear heads need k > 0");
    if (spec.init != "zero" && spec.init != "random")
      throw ConfigError(where + ": init must be zero or random, got '" + spec.init + "'");
  }

  std::vector<ParamShape> shapes(const HeadSpec& spec, int64_t vocab, int64_t) const override {
    if (spec.rank == 0) return {{"bbl_weight", {vocab, vocab}}};
    return {{"bbl_in", {vocab, spec.rank}}, {"bbl_out", {vocab, spec.rank}}};
  }

  torch::Tensor initial(const ParamShape& p, const HeadSpec& spec, uint64_t seed) const override {
    if (spec.init == "random") {
      // nn.Linear(V, V), or nn.Linear(V, r) then nn.Linear(r, V), as the reference's head.
      if (p.name == "bbl_out") return linear_uniform(p.shape, spec.rank, mix_seed(seed, 3));
      return linear_uniform(p.shape, p.shape[0], mix_seed(seed, 2));
    }
    if (p.name == "bbl_in")  // the k inputs are logits of size O(10): keep Inᵀ·x of order 1
      return normal_tensor(p.shape, 1.0 / std::sqrt(static_cast<double>(spec.k)), mix_seed(seed, 2));
    return torch::zeros(p.shape, torch::kFloat32);
  }

  torch::Tensor apply(const Params& p, const HeadSpec& spec, const torch::Tensor& logits, const torch::Tensor&,
                      const model::VocabParallel& vocab) const override {
    check_support(spec, vocab.vocab_size());
    const auto [z, ids] = base_topk(logits, spec.k, vocab);  // [N,k]
    if (spec.rank == 0) {
      // The top-k kept over the whole vocabulary [N,V] (built from the k pairs on every rank), times
      // this rank's rows of M.
      const torch::Tensor x = torch::zeros({logits.size(0), vocab.vocab_size()}, logits.options()).scatter(1, ids, z);
      return logits + torch::matmul(x, vocab.rows(p.at("bbl_weight")).t());  // [N,V_local]
    }
    const int64_t n = logits.size(0), k = spec.k, r = spec.rank;
    const torch::Tensor in = p.at("bbl_in").index_select(0, ids.reshape({-1})).view({n, k, r});  // [N,k,r]
    const torch::Tensor context = torch::bmm(z.unsqueeze(1), in).squeeze(1);                     // [N,r]
    return logits + torch::matmul(context, vocab.rows(p.at("bbl_out")).t());                     // [N,V_local]
  }
};

}  // namespace

const Variant& bb_variant() {
  static const BbVariant v;
  return v;
}

const Variant& bb_linear_variant() {
  static const BbLinearVariant v;
  return v;
}

}  // namespace sf::heads
