#pragma once
// The logit dataset written by `superficial extract` (results-schema/logits-v1): per example the
// prompt and the aligned model's greedy response, and per response position both models' top-k
// logits, the base model's final hidden state, the token and whether it is EOS.
//
// Position j of an example is the prediction of response token j (given the prompt and response
// tokens before it); rows are addressable as (example_id, position).
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sf::extract {

struct ExtractedExample {
  int64_t example_id = 0;      // index of the prompt in the task's source file
  std::string task;            // task name from the config
  std::string prompt;          // raw prompt text (before templates)
  std::string response;        // aligned model's decoded answer
  std::vector<int32_t> aligned_prompt_ids;  // prompt rendered with the aligned model's template
  std::vector<int32_t> base_prompt_ids;     // prompt rendered with the base model's template
  std::vector<int32_t> response_ids;        // [n] the aligned model's greedy response
  torch::Tensor aligned_topk_logits;  // [n,k] float32, descending
  torch::Tensor aligned_topk_ids;     // [n,k] int64
  torch::Tensor base_topk_logits;     // [n,k] float32, descending
  torch::Tensor base_topk_ids;        // [n,k] int64
  torch::Tensor base_hidden;          // [n,H] float32 (stored as fp16/bf16)
  torch::Tensor is_eos;               // [n] bool
};

// Read access to a finished logit dataset (the shared file or one rank's shard).
class LogitDataset {
 public:
  // Throws FormatError naming the file and the offending dataset/attribute if the file does not
  // follow its schema version, or IoError if it cannot be opened.
  static LogitDataset open(const std::filesystem::path& file);

  int64_t num_examples() const;
  int64_t num_tokens() const;
  int64_t top_k() const;
  int64_t hidden_size() const;
  // Example by its row in the file's example index (0..num_examples-1).
  ExtractedExample example(int64_t row) const;
  // File-level attributes: schema version, tool version, git SHA, resolved config, models and hashes.
  const nlohmann::json& attributes() const;
  const std::filesystem::path& path() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::extract
