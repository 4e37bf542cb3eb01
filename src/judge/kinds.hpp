#pragma once
// The judge kinds behind sf::judge::Judge (judge/judge.hpp). Used by load_judge and by tests.
#include <optional>
#include <string>
#include <vector>

#include "judge/judge.hpp"
#include "judge/roberta.hpp"
#include "model/causal_lm.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::judge {

// The tokens `label` adds after `context` (both encoded without special tokens): the suffix of
// encode(context + label) when encode(context) is its prefix, else encode(label) alone.
std::vector<int32_t> continuation_ids(const tok::Tokenizer& tokenizer, const std::string& context,
                                      const std::string& label);

class LabelProbJudge : public Judge {
 public:
  LabelProbJudge(Recipe recipe, model::CausalLM model, tok::Tokenizer tokenizer, tok::ChatTemplate chat,
                 int64_t batch_size);
  std::vector<Verdict> judge(const std::vector<std::string>& inputs) const override;
  // Per input, the log-likelihood of each label (the raw values of the verdicts).
  std::vector<std::vector<double>> label_loglik(const std::vector<std::string>& inputs) const;

 private:
  Recipe recipe_;
  model::CausalLM model_;
  tok::Tokenizer tokenizer_;
  tok::ChatTemplate chat_;
  int64_t batch_size_;
};

class GenerateJudge : public Judge {
 public:
  GenerateJudge(Recipe recipe, model::CausalLM model, tok::Tokenizer tokenizer, tok::ChatTemplate chat,
                int64_t batch_size);
  std::vector<Verdict> judge(const std::vector<std::string>& inputs) const override;
  // The verdict for a text the judge wrote: the regex's group (or whole match) as a number.
  static Verdict parse(const Recipe& recipe, const std::string& text);

 private:
  Recipe recipe_;
  model::CausalLM model_;
  tok::Tokenizer tokenizer_;
  tok::ChatTemplate chat_;
  int64_t batch_size_;
};

class ClassifierJudge : public Judge {
 public:
  ClassifierJudge(Recipe recipe, RobertaClassifier model, tok::Tokenizer tokenizer, int64_t batch_size);
  std::vector<Verdict> judge(const std::vector<std::string>& inputs) const override;
  // The classifier's input ids for a text: <s> + tokens + </s>, the tokens cut so that the whole
  // fits the model's positions (as transformers' truncation=True).
  std::vector<int32_t> encode(const std::string& text) const;
  // Logits [N, num_labels] of the inputs, batched with right padding.
  torch::Tensor logits(const std::vector<std::string>& inputs) const;

 private:
  Recipe recipe_;
  RobertaClassifier model_;
  tok::Tokenizer tokenizer_;
  int64_t batch_size_;
};

}  // namespace sf::judge
