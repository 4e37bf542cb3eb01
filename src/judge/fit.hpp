#pragma once
// A judge's input within its model's context. What a filled-in prompt takes in positions follows
// from config.json and tokenizer.json alone, so the stage fits every input while it plans the units,
// before any weights are read, and a unit's key names the input the judge actually reads (the
// judgments file keeps it in verdicts/input).
//
//   label_prob  the prompt under the judge's template, then its longest label's tokens
//   generate    the prompt under the judge's template, then the recipe's max_new_tokens
//   classifier  <s> + the input's tokens + </s>, within max_position_embeddings - pad_token_id - 1
//
// The recipe's `truncate:` decides what an input that does not fit does:
//   error (default)  ShapeError naming the judge, the item (task and example, or held-out item),
//                    the positions the input needs and the model's limit
//   answer           the longest start of {answer} (whole tokens of the judge's tokenizer) with which
//                    the input fits; the rest of the prompt stays whole. A classifier whose prompt is
//                    "{answer}" then reads what transformers' truncation=True gives it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "judge/spec.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::judge {

struct FittedInput {
  std::string text;            // the recipe's prompt filled in (before the judge's template)
  int64_t dropped_tokens = 0;  // tokens cut from the end of {answer}
};

class InputFit {
 public:
  // Reads the binding's config.json and tokenizer.json (run judge::preflight first).
  InputFit(Recipe recipe, const Binding& binding);

  // Positions the judge's model needs for `input` (a filled-in prompt), as above.
  int64_t positions(const std::string& input) const;
  int64_t max_positions() const { return max_positions_; }

  // The recipe's prompt filled from `fields`, fitted by the recipe's policy; `item` names the
  // input in errors ("task t, system s, example 3").
  FittedInput fill(const std::map<std::string, std::string>& fields, const std::string& item) const;

 private:
  Recipe recipe_;
  std::string judge_;  // "judge 'truth' (model DIR)"
  tok::Tokenizer tokenizer_;
  std::optional<tok::ChatTemplate> chat_;  // LM judges
  int64_t after_prompt_ = 0;               // positions after the prompt (label or new tokens)
  int64_t max_positions_ = 0;
};

}  // namespace sf::judge
