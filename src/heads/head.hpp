#pragma once
// Superficial heads: residual modifiers of a base model's final logits, trained by KL to the
// aligned model's top-k softmax (`superficial train-head`). Variants:
//   hidden  ΔW·h, ΔW [V,H] zero-initialised (the paper's main head); with rank r: ΔW = U·Vᵀ
//   bb      a map on the base model's top-k logits only (vocabulary space, so it applies to a
//           larger base model with the same tokenizer)
//   bias    one learned bias per vocabulary entry
// Saved as safetensors with metadata (variant, k, base model hash, tokenizer hash, config).
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace sf::heads {

class Head {
 public:
  // Throws FormatError naming the file and tensor/metadata key when the file is not a head.
  static Head load(const std::filesystem::path& file, torch::Device device = torch::kCPU);

  // base_logits [N,V] float32, hidden [N,H] → corrected logits [N,V] = base_logits + correction.
  // ShapeError when V or H do not match the head.
  torch::Tensor apply(const torch::Tensor& base_logits, const torch::Tensor& hidden) const;

  const std::string& variant() const;
  // Metadata stored with the head (variant, k, rank, base_model_hash, tokenizer_hash, config).
  const std::map<std::string, std::string>& metadata() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace sf::heads
