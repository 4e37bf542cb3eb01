#include "heads/variant.hpp"

#include <cmath>

#include "core/error.hpp"
#include "heads/rng.hpp"

namespace sf::heads {

const Variant& hidden_variant();
const Variant& bias_variant();
const Variant& bb_variant();
const Variant& bb_linear_variant();

const Variant& variant_of(const std::string& type, const std::string& where) {
  if (type == "hidden") return hidden_variant();
  if (type == "bias") return bias_variant();
  if (type == "bb") return bb_variant();
  if (type == "bb_linear") return bb_linear_variant();
  throw ConfigError(where + ": unknown head type '" + type + "' (expected hidden, bias, bb or bb_linear)");
}

torch::Tensor linear_uniform(const std::vector<int64_t>& shape, int64_t fan_in, uint64_t seed) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  float* data = t.data_ptr<float>();
  SplitMix64 g(seed);
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = static_cast<float>(bound * (2.0 * g.uniform() - 1.0));
  return t;
}

}  // namespace sf::heads
