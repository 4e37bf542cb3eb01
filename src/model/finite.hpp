#pragma once
// The non-finite guard. Every logit row a stage keeps or uses (extract, evaluate, judge, head
// training) and the outputs of `score` and `generate` pass through require_finite(): one NaN or
// Inf stops the unit with a NumericError naming the model, task, example, position and the first
// non-finite entry, so no NaN logit is ever archived or trained on.
//
// The checks look at what score()/generate() return (top-k logits with their ids, recorded
// per-step top-k, per-token log-probabilities, hidden states): a NaN anywhere in a logit row
// reaches these (torch's topk and argmax order NaN above every number; log-softmax turns a NaN or
// +Inf anywhere in the row into a non-finite log-probability), so the forward pass itself stays
// unchanged. The cost is one reduction over the checked tensor (`bench forward` measures it).
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

namespace sf::model {

struct NonFinite {
  int64_t row = 0;     // first dimension
  int64_t column = 0;  // index in the row (0 for a 1-D tensor)
  double value = 0;    // NaN, +Inf or -Inf
};

// The first (row-major) NaN/Inf entry of a floating tensor of 1 or 2 dimensions, on any device;
// nullopt when every entry is finite (integer tensors are always finite).
std::optional<NonFinite> first_non_finite(const torch::Tensor& t);

// "nan", "inf" or "-inf".
std::string non_finite_text(double v);

// What a checked tensor holds, for the message.
struct FiniteCheck {
  std::string what;            // "extract: model tiny-chat, task gsm8k, example 12"
  std::string name;            // "aligned top-k logits"
  int64_t first_position = 0;  // the position of row 0 (rows are positions)
  torch::Tensor ids;           // optional [rows, columns] token ids of the entries (top-k ids)
};

// NumericError "<what>, position <p>: <name>: entry <c> (token <id>) = nan; non-finite values are
// never stored or used" when `t` has a NaN/Inf entry.
void require_finite(const torch::Tensor& t, const FiniteCheck& check);

}  // namespace sf::model
