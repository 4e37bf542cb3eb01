#pragma once
// Teacher-forced scoring and batched, KV-cached generation on top of CausalLM::forward, for one
// model or an Ensemble: a weighted sum of several models' next-token logits (proxy-tuning adds an
// expert and subtracts an anti-expert), the main model's logits first passed through a transform
// (a superficial head). Every model of an ensemble decodes the same tokens in lock-step, each from
// its own prompt (its own chat template). All tensors stay on the models' device until results
// are returned on the host. Everything runs under torch::InferenceMode.
//
// Models split over a tensor group (CausalLM::vocab().is_split()): every rank of the group calls
// these functions with the same arguments at the same time, and every member of an ensemble is
// split over the same group. Log-probabilities, top-k (merged from each rank's top-k), greedy tokens
// (argmax over the split vocabulary) and sampled tokens come out identical on every rank; the
// logits a LogitsTransform sees and returns are this rank's vocabulary slice [N, V_local] (ids
// vocab().begin() ...). Top-k order is canonical (values descending, equal values by ascending id:
// model/vocab_parallel.hpp) with one rank or many.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/causal_lm.hpp"

namespace sf::model {

struct ScoreOptions {
  int64_t top_k = 0;       // > 0: return top-k of the logits per position; 0: none
  bool hidden = false;     // return the final hidden states
  int64_t batch_size = 8;  // sequences per forward
  // Empty: every position. Otherwise one entry per sequence, 0 <= from[i] <= n_i: only positions
  // t >= from[i] get logits (the lm_head and top-k skip the others, e.g. a prompt before an answer);
  // topk_* and hidden then hold rows [from_i, n_i), and token_logprobs are not computed (empty).
  std::vector<int64_t> from;
};

// Per sequence i (length n_i), per position t < n_i: the distribution for token t+1. On the host.
struct ScoreOutput {
  std::vector<torch::Tensor> token_logprobs;  // each [n_i]: log p(x_t | x_<t); entry 0 is 0 (empty with `from`)
  std::vector<torch::Tensor> topk_logits;     // each [n_i, k] raw logits, descending (if top_k)
  std::vector<torch::Tensor> topk_ids;        // each [n_i, k] int64 (if top_k)
  std::vector<torch::Tensor> hidden;          // each [n_i, H] float32 (if hidden)
};

ScoreOutput score(const CausalLM& model, const std::vector<std::vector<int32_t>>& sequences, const ScoreOptions& opts);

// Changes the main model's logits before they are combined: logits [N,V] float32 and hidden
// [N,H] float32 on the model's device → [N,V] on the same device ([N,V_local] in and out when the
// model is split over a tensor group).
using LogitsTransform = std::function<torch::Tensor(const torch::Tensor& logits, const torch::Tensor& hidden)>;

struct Member {
  const CausalLM* model = nullptr;
  double weight = 1.0;
};

// logits = Σ_m weight_m · z_m, with z_0 = transform(logits of members[0]) when a transform is set.
// Every member must share the vocabulary, the device and the tensor group size of members[0]
// (ShapeError otherwise).
struct Ensemble {
  std::vector<Member> members;
  LogitsTransform transform;
  static Ensemble of(const CausalLM& model, LogitsTransform transform = {});
  // logits: [N,V] per member (float32), hidden: [N,H] of members[0] → [N,V].
  torch::Tensor combine(const std::vector<torch::Tensor>& logits, const torch::Tensor& hidden) const;
  void check() const;
};

// Prompts of every member for the same rows: prompts[m][i] is row i as member m sees it.
using MemberPrompts = std::vector<std::vector<std::vector<int32_t>>>;

// Σ_t log p(continuation_t | prompt, continuation_<t) under the ensemble, per row i (the sequence of
// member m is prompts[m][i] followed by continuations[i]).
std::vector<double> continuation_logprobs(const Ensemble& ensemble, const MemberPrompts& prompts,
                                          const std::vector<std::vector<int32_t>>& continuations, int64_t batch_size);

struct GenerateOptions {
  int64_t max_new_tokens = 512;
  bool greedy = true;
  double temperature = 1.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> eos_ids;  // generation of a row ends after it emits one of these
  // Optional: return true to end row `row` given its generated ids so far (stop strings).
  std::function<bool(size_t row, const std::vector<int32_t>& generated)> stop;
  int64_t record_top_k = 0;  // > 0: record the top-k of the final (combined) logits at each step
  int64_t batch_size = 16;
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids, the EOS token included when emitted
  std::string finish_reason;    // "eos" | "stop" | "length"
  torch::Tensor topk_logits;    // [n, record_top_k] float32 (if recorded), host
  torch::Tensor topk_ids;       // [n, record_top_k] int64 (if recorded), host
};

std::vector<Generation> generate(const Ensemble& ensemble, const MemberPrompts& prompts, const GenerateOptions& opts);
// One model, no transform.
std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& opts);

}  // namespace sf::model
