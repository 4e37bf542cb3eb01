#pragma once
// A judge: a model that reads filled-in prompts and gives one verdict each. The kinds are types
// behind this interface (judge/kinds.hpp):
//   label_prob  a causal LM (llama / mistral / qwen2) reads the prompt under its chat template; the
//               score of each label is its log-likelihood as the continuation (the label's tokens are
//               those it adds to the prompt's, as when the judge was fine-tuned on prompt + label);
//               probabilities = softmax over the labels.
//   generate    a causal LM writes a verdict (greedy); the recipe's regex extracts a number.
//   classifier  a RoBERTa sequence classifier reads the prompt as <s> … </s>; probabilities =
//               softmax of its logits, label = argmax (as ToxiGen's evaluation does).
#include <torch/torch.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.hpp"
#include "judge/spec.hpp"

namespace sf::judge {

struct Verdict {
  double score = std::numeric_limits<double>::quiet_NaN();  // P(positive label) | the extracted number
  std::string label;          // a declared label | positive / negative / match (generate) | no_match
  std::vector<double> raw;    // per declared label: log-likelihood (label_prob) or logit (classifier)
  std::vector<double> prob;   // per declared label: softmax of raw
  std::string text;           // generate: what the judge wrote
  torch::Tensor step_logits;  // generate: [n,1] the logit each greedy step chose (non-finite guard)
  bool matched() const { return label != kNoMatch; }
  static constexpr const char* kNoMatch = "no_match";
};

class Judge {
 public:
  virtual ~Judge() = default;
  // One verdict per input (a recipe prompt with its fields filled in), in order.
  virtual std::vector<Verdict> judge(const std::vector<std::string>& inputs) const = 0;
};

// Checks a judge before anything is computed, reading only config.json and tokenizer.json: the
// binding has what the kind needs (a template for LM judges, none for a classifier), the tokenizer
// spells every label, a classifier's number of classes equals the recipe's labels. ConfigError,
// one line naming the judge, the file and the label.
void preflight(const Recipe& recipe, const Binding& binding);

// Loads the judge's model onto `device` (preflight first). A causal-LM judge is split over
// `tensor_group` (every rank of the group then judges the same inputs together); a classifier is
// small and held whole by every rank.
std::unique_ptr<Judge> load_judge(const Recipe& recipe, const Binding& binding, torch::Device device,
                                  const dist::Comm& tensor_group = {});

// Verdict of a label judge from one raw value per label (log-likelihoods or logits).
Verdict label_verdict(const Recipe& recipe, std::vector<double> raw);

}  // namespace sf::judge
