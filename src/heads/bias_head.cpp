// The `bias` head: z + b, one learned value per vocabulary entry.
#include "core/error.hpp"
#include "heads/variant.hpp"

namespace sf::heads {
namespace {

class BiasVariant final : public Variant {
 public:
  void validate(const HeadSpec& spec, const std::string& where) const override {
    if (spec.rank != 0 || spec.k != 0) throw ConfigError(where + ": bias heads take neither rank nor k");
    if (spec.init != "zero") throw ConfigError(where + ": bias heads start at zero (init: zero)");
  }

  std::vector<ParamShape> shapes(const HeadSpec&, int64_t vocab, int64_t) const override { return {{"bias", {vocab}}}; }

  torch::Tensor initial(const ParamShape& p, const HeadSpec&, uint64_t) const override {
    return torch::zeros(p.shape, torch::kFloat32);
  }

  torch::Tensor apply(const Params& p, const HeadSpec&, const torch::Tensor& logits, const torch::Tensor&,
                      const model::VocabParallel& vocab) const override {
    return logits + vocab.rows(p.at("bias"));  // [N,V_local]
  }
};

}  // namespace

const Variant& bias_variant() {
  static const BiasVariant v;
  return v;
}

}  // namespace sf::heads
