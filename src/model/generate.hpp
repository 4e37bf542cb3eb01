#pragma once
// Teacher-forced scoring and batched, KV-cached generation on top of CausalLM::forward.
// Both run under torch::InferenceMode.
//
// A model split over a tensor group (CausalLM::vocab().is_split()): every rank of the group calls
// score/generate with the same arguments at the same time. Log-probabilities, top-k (merged from
// each rank's top-k), greedy tokens (argmax over the split vocabulary) and sampled tokens come out
// identical on every rank; full log-probabilities, and the logits a LogitsHook sees, are this
// rank's vocabulary slice [.., V_local] (ids vocab().begin() ...). Top-k order is canonical (values
// descending, equal values by ascending id: model/vocab_parallel.hpp) with one rank or many.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/causal_lm.hpp"

namespace sf::model {

struct ScoreOptions {
  int64_t top_k = 0;           // > 0: return top-k of the logits per position; 0: none
  bool full_logprobs = false;  // return [B,T,V] log-softmax
  bool hidden = false;         // return the final hidden states
  int64_t batch_size = 8;      // sequences per forward
};

// Per sequence i (length n_i), per position t < n_i: the distribution for token t+1.
struct ScoreOutput {
  std::vector<torch::Tensor> token_logprobs;  // each [n_i]: log p(x_t | x_<t); entry 0 is 0
  std::vector<torch::Tensor> topk_logits;     // each [n_i, k] raw logits, descending (if top_k)
  std::vector<torch::Tensor> topk_ids;        // each [n_i, k] int64 (if top_k)
  std::vector<torch::Tensor> logprobs;        // each [n_i, V] (if full_logprobs); [n_i, V_local] when split
  std::vector<torch::Tensor> hidden;          // each [n_i, H] (if hidden)
};

ScoreOutput score(const CausalLM& model, const std::vector<std::vector<int32_t>>& sequences, const ScoreOptions& opts);

// Called once per decoding step with the logits of every row of the batch before a token is
// chosen. It may modify `logits` in place (a head adds its correction here).
// logits: [B,V] float32 ([B,V_local], this rank's slice, when split); hidden: [B,H] final hidden
// states; step: 0-based.
using LogitsHook = std::function<void(torch::Tensor& logits, const torch::Tensor& hidden, int64_t step)>;

struct GenerateOptions {
  int64_t max_new_tokens = 512;
  bool greedy = true;
  double temperature = 1.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> eos_ids;  // generation of a row ends after it emits one of these
  // Optional: return true to end row `row` given its generated ids so far (stop strings).
  std::function<bool(size_t row, const std::vector<int32_t>& generated)> stop;
  LogitsHook logits_hook;
  int64_t record_top_k = 0;  // > 0: record the top-k of the final (hooked) logits at each step
  int64_t batch_size = 16;
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids, the EOS token included when emitted
  std::string finish_reason;    // "eos" | "stop" | "length"
  torch::Tensor topk_logits;    // [n, record_top_k] float32 (if recorded)
  torch::Tensor topk_ids;       // [n, record_top_k] int64 (if recorded)
};

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& opts);

}  // namespace sf::model
