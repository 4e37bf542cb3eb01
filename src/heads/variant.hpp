#pragma once
// The interface behind every kind of head (head.hpp lists them). A Variant is stateless: it says
// which parameters a head of its kind has, how they start, and how they change the base logits.
// Adding a kind of head means adding one Variant and registering it in variant.cpp; nothing else
// compares head type names.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "heads/head.hpp"

namespace sf::heads {

struct ParamShape {
  std::string name;
  std::vector<int64_t> shape;
};

using Params = std::map<std::string, torch::Tensor>;

class Variant {
 public:
  virtual ~Variant() = default;
  // ConfigError naming `where` when rank, k or init do not fit this kind.
  virtual void validate(const HeadSpec& spec, const std::string& where) const = 0;
  virtual bool uses_hidden() const { return false; }
  // Parameters of a head of this kind, in their fixed order.
  virtual std::vector<ParamShape> shapes(const HeadSpec& spec, int64_t vocab, int64_t hidden) const = 0;
  // The initial value of one parameter (float32, CPU), drawn from `seed`.
  virtual torch::Tensor initial(const ParamShape& p, const HeadSpec& spec, uint64_t seed) const = 0;
  // logits [N,V_local] float32 (this rank's slice of the vocabulary; all of it when `vocab` is not
  // split), hidden [N,H] or undefined → that slice of the corrected logits [N,V_local].
  virtual torch::Tensor apply(const Params& p, const HeadSpec& spec, const torch::Tensor& logits,
                              const torch::Tensor& hidden, const model::VocabParallel& vocab) const = 0;
  // The ids [N,k] the head changes, undefined for full-vocabulary heads.
  virtual torch::Tensor support(const HeadSpec& spec, const torch::Tensor& logits) const { return {}; }
};

// The variant of a head type; ConfigError naming `where` for an unknown type.
const Variant& variant_of(const std::string& type, const std::string& where);

// Initial values shared by the variants: zeros, and torch.nn.Linear's default (uniform ±1/√fan_in)
// or a scaled normal, each from the portable generator in rng.hpp.
torch::Tensor linear_uniform(const std::vector<int64_t>& shape, int64_t fan_in, uint64_t seed);

}  // namespace sf::heads
