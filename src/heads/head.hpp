#pragma once
// Superficial heads: residual modifiers of a base model's final logits, trained by KL to the
// aligned model's top-k softmax (`superficial train-head`). Variants:
//   hidden  ΔW·h, ΔW [V,H] zero-initialised (the paper's main head); with rank r: ΔW = U·Vᵀ,
//           U [V,r] zero-initialised and V [H,r] random, so ΔW starts at zero
//   bb      a map on the base model's top-k logits only (vocabulary space, so it applies to a
//           larger base model with the same tokenizer): with p = softmax of the k largest base
//           logits (ids s_1..s_k), the logit of s_i is raised by  Out[s_i]·(Σ_j p_j In[s_j]) + b[s_i];
//           In, Out [V,r], b [V]. Out and b start at zero. Other ids are left unchanged.
//   bias    one learned bias per vocabulary entry, zero-initialised
// Saved as safetensors with metadata (variant, k, rank, base model hash, tokenizer hash, config).
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sf::heads {

// Metadata key naming the file format of a saved head; its value is kFormat.
inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kFormat = "superficial-head-v1";

struct HeadSpec {
  std::string name;     // output name: run_dir/heads/<name>.safetensors
  std::string variant;  // "hidden" | "bb" | "bias"
  int64_t rank = 0;     // hidden: 0 = dense ΔW, r > 0 = U·Vᵀ; bb: width r of In/Out (> 0)
  int64_t k = 0;        // bb: size of the base top-k support (> 0)
};

// ConfigError (naming `where`) when the variant is unknown or rank/k do not fit it.
void validate(const HeadSpec& spec, const std::string& where);

class Head {
 public:
  // A fresh head whose correction is zero for every input. The random factors (low-rank V, bb In)
  // are drawn from `seed` with a portable generator, so the same seed gives the same head
  // everywhere. bb and bias heads do not depend on hidden_size.
  static Head init(const HeadSpec& spec, int64_t vocab_size, int64_t hidden_size, uint64_t seed,
                   torch::Device device = torch::kCPU);
  // Throws FormatError naming the file and tensor/metadata key when the file is not a head.
  static Head load(const std::filesystem::path& file, torch::Device device = torch::kCPU);
  // Writes the parameters (float32) and the metadata; kFormatKey, variant, k, rank, vocab_size and
  // hidden_size are set from the head (overriding `extra`). Written to a temporary name, then
  // renamed, so an existing file is always complete.
  void save(const std::filesystem::path& file, const std::map<std::string, std::string>& extra = {}) const;

  // base_logits [N,V] float32, hidden [N,H] → corrected logits [N,V] = base_logits + correction.
  // ShapeError when V or H do not match the head. bb and bias heads ignore `hidden` (it may be
  // undefined), so they apply to a base of any hidden size.
  torch::Tensor apply(const torch::Tensor& base_logits, const torch::Tensor& hidden) const;

  // hidden and bias heads: full corrected logits from the base's final hidden state and lm_head
  // weight W [V,H]: hidden [N,H] → [N,V] = hidden·Wᵀ + correction (differentiable in the head).
  torch::Tensor corrected_logits(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight) const;
  // bb heads: corrected logits over the base's top-k support. topk_logits/topk_ids [N,k'] with
  // k' >= k, descending; only the first k columns are used → [N,k] (differentiable in the head).
  torch::Tensor corrected_support(const torch::Tensor& topk_logits, const torch::Tensor& topk_ids) const;

  // hidden heads: ΔW [V,H] (U·Vᵀ materialised for low rank). ConfigError for other variants.
  torch::Tensor delta_weight() const;

  // Parameters by name, in a fixed order. They share storage with the head: an optimiser
  // stepping them trains the head in place.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;

  const std::string& variant() const;
  const HeadSpec& spec() const;
  int64_t vocab_size() const;
  int64_t hidden_size() const;  // 0 for bb and bias heads
  // Metadata stored with the head (variant, k, rank, base_model_hash, tokenizer_hash, config).
  const std::map<std::string, std::string>& metadata() const;

  struct Impl;

 private:
  explicit Head(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace sf::heads
