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
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sf::extract {

struct ExtractedExample {
  int64_t item = 0;                         // unique number in the study: tasks in job order, prompts in source order
  int64_t example_id = 0;                   // index of the prompt in the task's source file
  std::string task;                         // task name from the config
  std::string finish_reason;                // eos | stop | length
  std::string prompt;                       // raw prompt text (before templates)
  std::string response;                     // aligned model's decoded answer
  std::vector<int32_t> aligned_prompt_ids;  // prompt rendered with the aligned model's template
  std::vector<int32_t> base_prompt_ids;     // prompt rendered with the base model's template
  std::vector<int32_t> response_ids;        // [n] the aligned model's greedy response
  torch::Tensor aligned_topk_logits;        // [n,k] float32, descending
  torch::Tensor aligned_topk_ids;           // [n,k] int64
  torch::Tensor base_topk_logits;           // [n,k] float32, descending
  torch::Tensor base_topk_ids;              // [n,k] int64
  torch::Tensor base_hidden;                // [n,H] float32 (stored as fp16/bf16)
  torch::Tensor is_eos;                     // [n] bool
};

// Token rows [begin, begin+count) of a file, across examples (for shuffled training batches).
struct TokenRows {
  torch::Tensor item;                 // [n] int64
  torch::Tensor position;             // [n] int64, position within the example's response
  torch::Tensor token_id;             // [n] int64
  torch::Tensor is_eos;               // [n] bool
  torch::Tensor aligned_topk_logits;  // [n,k] float32
  torch::Tensor aligned_topk_ids;     // [n,k] int64
  torch::Tensor base_topk_logits;     // [n,k] float32
  torch::Tensor base_topk_ids;        // [n,k] int64
  torch::Tensor base_hidden;          // [n,H] float32
};

// What head training reads of token rows.
struct TrainingRows {
  torch::Tensor aligned_topk_logits;  // [n,k] float32
  torch::Tensor aligned_topk_ids;     // [n,k] int32
  torch::Tensor base_hidden;          // [n,H] as stored (float16 | bfloat16)
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
  // Example by its row in the file's example index (0..num_examples-1; rows are sorted by item).
  ExtractedExample example(int64_t row) const;
  // The example index: first token row and response length of example `row`.
  int64_t token_offset(int64_t row) const;
  int64_t example_tokens(int64_t row) const;
  TokenRows tokens(int64_t begin, int64_t count) const;
  TrainingRows training_rows(int64_t begin, int64_t count) const;
  // The task of example `row`.
  const std::string& example_task(int64_t row) const;
  // File-level attributes: schema version, tool version, git SHA, resolved config, models and hashes.
  const nlohmann::json& attributes() const;
  const std::filesystem::path& path() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::extract
