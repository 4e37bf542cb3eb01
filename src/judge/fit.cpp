#include "judge/fit.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/error.hpp"
#include "judge/kinds.hpp"
#include "judge/plan.hpp"
#include "judge/roberta.hpp"
#include "model/config.hpp"
#include "model/model_files.hpp"

namespace sf::judge {

InputFit::InputFit(Recipe recipe, const Binding& binding)
    : recipe_(std::move(recipe)),
      judge_("judge '" + recipe_.name + "' (model " + binding.path.string() + ")"),
      tokenizer_(model::load_tokenizer(binding.path)),
      chat_(binding.chat_template) {
  if (recipe_.kind == Kind::kClassifier) {
    max_positions_ = RobertaConfig::from_file(binding.path / "config.json").max_tokens();
    return;
  }
  max_positions_ = model::load_model_config(binding.path).max_position_embeddings;
  if (!chat_) throw ConfigError(binding.where + ": template: required for a " + kind_name(recipe_.kind) + " judge");
  if (recipe_.kind == Kind::kGenerate) {
    after_prompt_ = recipe_.max_new_tokens;
    return;
  }
  // The longest label after a representative prompt (labels are spelled the same after any text
  // that ends as the recipe's prompt does; judge::preflight checked them).
  const std::string context = chat_->prompt(recipe_.prompt).text;
  for (const auto& label : recipe_.labels)
    after_prompt_ =
        std::max<int64_t>(after_prompt_, static_cast<int64_t>(continuation_ids(tokenizer_, context, label).size()));
}

int64_t InputFit::positions(const std::string& input) const {
  if (!chat_) return static_cast<int64_t>(tokenizer_.encode(input, true).size());
  const tok::RenderedPrompt p = chat_->prompt(input);
  return static_cast<int64_t>(tokenizer_.encode(p.text, p.add_special_tokens).size()) + after_prompt_;
}

FittedInput InputFit::fill(const std::map<std::string, std::string>& fields, const std::string& item) const {
  FittedInput out{fill_prompt(recipe_, fields), 0};
  if (max_positions_ <= 0) return out;
  const int64_t need = positions(out.text);
  if (need <= max_positions_) return out;
  const std::string sizes = item + ": the input needs " + std::to_string(need) + " positions, " + judge_ +
                            " reads at most " + std::to_string(max_positions_);
  if (recipe_.truncate == InputTruncate::kError)
    throw ShapeError(recipe_.where + ": " + sizes +
                     " (truncate: error; `truncate: answer` cuts the end of the answer)");
  // The longest start of the answer, in whole tokens, with which the input fits (positions grow with
  // the answer's length; the bisection checks every candidate it keeps).
  const auto a = fields.find("answer");
  if (a == fields.end()) throw ShapeError(recipe_.where + ": " + sizes + ", and it has no {answer} to cut");
  const std::vector<int32_t> answer = tokenizer_.encode(a->second, false);
  auto with = [&](int64_t n) {
    std::map<std::string, std::string> f = fields;
    f["answer"] = tokenizer_.decode(std::vector<int32_t>(answer.begin(), answer.begin() + n), false);
    return fill_prompt(recipe_, f);
  };
  std::string best = with(0);
  if (positions(best) > max_positions_)
    throw ShapeError(recipe_.where + ": " + sizes + ", and " + std::to_string(positions(best)) +
                     " even with an empty answer");
  int64_t lo = 0, hi = static_cast<int64_t>(answer.size());  // `lo` fits, `hi` does not
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    std::string candidate = with(mid);
    if (positions(candidate) <= max_positions_) {
      lo = mid;
      best = std::move(candidate);
    } else {
      hi = mid;
    }
  }
  out.dropped_tokens = static_cast<int64_t>(answer.size()) - lo;
  out.text = std::move(best);
  spdlog::debug("{}: truncate answer: dropped the last {} of {} answer tokens for {}", item, out.dropped_tokens,
                answer.size(), judge_);
  return out;
}

}  // namespace sf::judge
