#pragma once
// The rows `superficial evaluate` writes (results-schema/results-v2): one per (task, system,
// example), with the prompt as text and token ids, the answer, scores, multiple-choice
// log-likelihoods and per generated token the system's top-k logits. Chunk files and the merged
// file share this layout.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace sf::eval {

inline constexpr int64_t kResultsSchemaVersion = 2;

struct Row {
  std::string task, system, prompt, prompt_text, answer, extracted, finish_reason;
  int64_t example_id = 0;
  std::vector<int32_t> prompt_ids;  // what the system's main model read
  std::vector<int32_t> tokens;
  torch::Tensor topk_logits, topk_ids;  // [n,K] host
  std::vector<std::pair<std::string, double>> scores;
  struct Choice {
    std::string text;
    bool correct = false, best = false;
    double logprob = 0;
    int32_t num_tokens = 0;
  };
  std::vector<Choice> choices;
};

// Appends rows to a new results file (written in place; callers write to a temporary name and
// rename when complete).
class ResultsWriter {
 public:
  ResultsWriter(const std::filesystem::path& path, const nlohmann::json& attrs, int64_t top_k);
  ~ResultsWriter();
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;
  void append(const std::vector<Row>& rows);
  void close();
  int64_t rows() const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

// Every row of a results file of this schema version (FormatError naming the file otherwise).
std::vector<Row> read_rows(const std::filesystem::path& path);

}  // namespace sf::eval
