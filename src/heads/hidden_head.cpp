// The `hidden` head: z + ΔW·h, dense (rank 0) or low rank ΔW = U·Vᵀ.
#include <cmath>

#include "core/error.hpp"
#include "heads/rng.hpp"
#include "heads/variant.hpp"

namespace sf::heads {
namespace {

class HiddenVariant final : public Variant {
 public:
  void validate(const HeadSpec& spec, const std::string& where) const override {
    if (spec.rank < 0) throw ConfigError(where + ": rank must be >= 0 (0 = dense ΔW)");
    if (spec.k != 0) throw ConfigError(where + ": k applies to bb and bb_linear heads only");
    if (spec.init != "zero" && spec.init != "random")
      throw ConfigError(where + ": init must be zero or random, got '" + spec.init + "'");
  }

  bool uses_hidden() const override { return true; }

  std::vector<ParamShape> shapes(const HeadSpec& spec, int64_t vocab, int64_t hidden) const override {
    if (spec.rank == 0) return {{"delta_weight", {vocab, hidden}}};
    return {{"delta_u", {vocab, spec.rank}}, {"delta_v", {hidden, spec.rank}}};
  }

  torch::Tensor initial(const ParamShape& p, const HeadSpec& spec, uint64_t seed) const override {
    const int64_t hidden = p.name == "delta_weight" ? p.shape[1] : 0;
    if (spec.init == "random") {
      // nn.Linear(H, V) for ΔW; nn.Linear(H, r) then nn.Linear(r, V) for the factors.
      if (p.name == "delta_weight") return linear_uniform(p.shape, hidden, mix_seed(seed, 1));
      if (p.name == "delta_v") return linear_uniform(p.shape, p.shape[0], mix_seed(seed, 1));
      return linear_uniform(p.shape, spec.rank, mix_seed(seed, 2));
    }
    // zero: ΔW = 0; V random so that U (zero) receives a gradient, scaled so h·V is O(|h|/√H).
    if (p.name == "delta_v")
      return normal_tensor(p.shape, 1.0 / std::sqrt(static_cast<double>(p.shape[0])), mix_seed(seed, 1));
    return torch::zeros(p.shape, torch::kFloat32);
  }

  torch::Tensor apply(const Params& p, const HeadSpec& spec, const torch::Tensor& logits, const torch::Tensor& hidden,
                      const model::VocabParallel& vocab) const override {
    const int64_t h_size = spec.rank == 0 ? p.at("delta_weight").size(1) : p.at("delta_v").size(0);
    if (!hidden.defined() || hidden.dim() != 2 || hidden.size(0) != logits.size(0) || hidden.size(1) != h_size) {
      throw ShapeError("head '" + spec.name + "': hidden must be [" + std::to_string(logits.size(0)) + "," +
                       std::to_string(h_size) + "], got " +
                       (hidden.defined() ? c10::str(hidden.sizes()) : std::string("undefined")));
    }
    const torch::Tensor h = hidden.to(torch::kFloat32);
    // This rank's rows of ΔW (or U) give this rank's columns of the correction.
    if (spec.rank == 0) return logits + torch::matmul(h, vocab.rows(p.at("delta_weight")).t());         // [N,V_local]
    return logits + torch::matmul(torch::matmul(h, p.at("delta_v")), vocab.rows(p.at("delta_u")).t());  // [N,V_local]
  }
};

}  // namespace

const Variant& hidden_variant() {
  static const HiddenVariant v;
  return v;
}

}  // namespace sf::heads
