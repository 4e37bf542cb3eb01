#pragma once
// Superficial heads: residual modifiers of a base model's final logits, trained by KL to the
// aligned model's top-k softmax (`superficial train-head`). Every head is trained and served
// through the same function, `apply`: training minimises KL(aligned top-k ‖ softmax(apply(z, h)))
// over the full vocabulary (heads/objective.hpp), and generation and scoring use softmax(apply(z, h)).
//
// Kinds (HeadSpec::type), each a Variant (heads/variant.hpp):
//   hidden     z + ΔW·h, ΔW [V,H] (the paper's head); with rank r: ΔW = U·Vᵀ, U [V,r], V [H,r]
//   bias       z + b, b [V]
//   bb         a map on the base's top-k logits only, so it applies to any base with the same
//              tokenizer (weak-to-strong transfer). With S the k largest base logits z_S and
//              p = softmax(z_S), the support is re-weighted by a gain
//                g_i = Out[s_i]·(Σ_j p_j In[s_j]) + b[s_i]            (In, Out [V,r], b [V])
//              and served as  z'_S = log_softmax(z_S + g) + logsumexp(z_S),  z' = z elsewhere:
//              the mass the base puts on S is kept, only its split inside S changes, so a common
//              shift of g changes nothing (the training objective cannot see one either).
//   bb_linear  the reference's black-box head (toplogit-logit-residual): z + M·topk_k(z), where
//              topk_k(z) keeps the k largest logits and zeroes the rest. M [V,V] dense (rank 0, the
//              reference's exact form) or M = Out·Inᵀ with In, Out [V,r] (rank r > 0, computed from
//              the k non-zero inputs only, never as a dense V×V matrix). It changes every logit.
// Initialisation (HeadSpec::init): `zero` makes the correction zero for every input (Out/U/ΔW/M/b
// zero, the other factor random so gradients flow); `random` initialises every matrix as
// torch.nn.Linear does (uniform ±1/√fan_in), as the reference's heads start.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/vocab_parallel.hpp"

namespace sf::heads {

class Variant;

struct HeadSpec {
  std::string name;           // output name: run_dir/heads/<name>.safetensors
  std::string type;           // hidden | bias | bb | bb_linear
  int64_t rank = 0;           // hidden: 0 = dense ΔW; bb: width of In/Out (> 0); bb_linear: 0 = dense M
  int64_t k = 0;              // bb, bb_linear: size of the base top-k support (> 0)
  std::string init = "zero";  // zero | random
};

// ConfigError (naming `where`) when the type is unknown or rank/k/init do not fit it.
void validate(const HeadSpec& spec, const std::string& where);

class Head {
 public:
  // A fresh head. The random factors are drawn from `seed` with a portable generator, so the same
  // seed gives the same head everywhere. `hidden_size` is used by hidden heads only.
  static Head init(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size, uint64_t seed,
                   torch::Device device = torch::kCPU);
  // A head from saved parameters (checked against the spec's shapes; FormatError naming `where`).
  static Head from_params(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size,
                          std::vector<std::pair<std::string, torch::Tensor>> params, const std::string& where,
                          torch::Device device = torch::kCPU);

  // logits [N,V] float32, hidden [N,H] (hidden heads; may be undefined for the others) → the
  // corrected logits [N,V] float32. Every input must live on the head's device (ShapeError naming
  // both devices otherwise: a unit's tensors never cross devices silently); differentiable in the
  // head's parameters.
  torch::Tensor apply(const torch::Tensor& logits, const torch::Tensor& hidden) const;
  // The same on logits split over a tensor group's vocabulary (model/vocab_parallel.hpp): logits
  // [N,V_local] are this rank's slice, and so is the result, equal to that slice of apply() on the
  // whole logits. Nothing of size V is gathered: hidden and bias heads use this rank's rows of
  // their parameters; bb and bb_linear heads take the group's merged top-k (identical on every
  // rank) and write the changed support back into each rank's slice. Every rank of the group calls
  // it together. With an unsplit `vocab` it is apply() above.
  torch::Tensor apply(const torch::Tensor& logits, const torch::Tensor& hidden,
                      const model::VocabParallel& vocab) const;
  // The ids [N,k] whose logits the head changes (bb, bb_linear: the base top-k), or an undefined
  // tensor when it acts on the whole vocabulary.
  torch::Tensor support(const torch::Tensor& logits) const;
  bool uses_hidden() const;

  // hidden heads: ΔW [V,H] (U·Vᵀ materialised for low rank). ConfigError for other kinds.
  torch::Tensor delta_weight() const;

  // Parameters by name, in a fixed order. They share storage with the head: an optimiser
  // stepping them trains the head in place.
  const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters() const;
  const HeadSpec& spec() const;
  const std::string& type() const;
  int64_t vocab_size() const;
  int64_t hidden_size() const;  // 0 for heads that do not read hidden states
  torch::Device device() const;

  struct State;

 private:
  explicit Head(std::shared_ptr<const State> s) : s_(std::move(s)) {}
  std::shared_ptr<const State> s_;
};

}  // namespace sf::heads
