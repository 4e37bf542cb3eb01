#pragma once
// A synthetic study for head tests: a tiny random base model folder and a logit dataset whose
// aligned model is, by construction, base + a known correction (so a head can express it):
//   aligned logits = h·(W + ΔW*)ᵀ + b*      base logits = h·Wᵀ
// with h random hidden states (rounded to fp16 as the dataset stores them) and W the base's lm_head.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>

namespace sf::test {

struct StudyOptions {
  int64_t vocab = 48;
  int64_t hidden = 16;
  int64_t examples = 24;
  int64_t top_k = 12;
  double delta_scale = 0.0;  // ΔW* = delta_scale · U·Vᵀ/√rank, U,V standard normal
  int64_t delta_rank = 4;
  double bias_scale = 0.0;  // b* = bias_scale · standard normal
  bool tie_embeddings = false;
  int64_t tasks = 1;  // examples take tasks synthetic0, synthetic1, ... in turn (1: all "synthetic")
  uint64_t seed = 1;
};

struct Study {
  std::filesystem::path base_dir;     // <dir>/base: config.json + model.safetensors
  std::filesystem::path aligned_dir;  // <dir>/aligned: a model of the same shape (never read by training)
  std::filesystem::path dataset;      // <dir>/extract/base__aligned/logits.h5, the pair's extraction
  torch::Tensor lm_head;              // W [V,H]
  torch::Tensor delta;                // ΔW* [V,H]
  torch::Tensor bias;                 // b* [V]
};

// Writes <dir>/base, <dir>/aligned and the pair (base, aligned)'s dataset, laid out as a run folder
// whose job names the models `base` and `aligned`.
Study make_study(const std::filesystem::path& dir, const StudyOptions& opts);

// A tiny random model of the llama family saved to `dir` (config.json + model.safetensors).
void make_tiny_model(const std::filesystem::path& dir, int64_t vocab, int64_t hidden, bool tie, uint64_t seed);

}  // namespace sf::test
