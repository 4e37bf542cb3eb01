// generate judges: the judge writes a verdict; the recipe's regex extracts a number from it.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "judge/kinds.hpp"
#include "model/generate.hpp"

namespace sf::judge {

GenerateJudge::GenerateJudge(Recipe recipe, model::CausalLM model, tok::Tokenizer tokenizer, tok::ChatTemplate chat,
                             int64_t batch_size)
    : recipe_(std::move(recipe)),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      chat_(std::move(chat)),
      batch_size_(batch_size) {}

Verdict GenerateJudge::parse(const Recipe& recipe, const std::string& text) {
  Verdict v;
  v.text = text;
  v.label = Verdict::kNoMatch;
  const std::regex re(recipe.regex, std::regex::ECMAScript);
  std::smatch m;
  if (!std::regex_search(text, m, re)) return v;
  const std::string number = m.size() > 1 ? m[1].str() : m[0].str();
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || errno != 0 || !std::isfinite(x)) return v;
  v.score = x;
  v.label = !recipe.positive_at_least ? "match" : x >= *recipe.positive_at_least ? "positive" : "negative";
  return v;
}

std::vector<Verdict> GenerateJudge::judge(const std::vector<std::string>& inputs) const {
  torch::InferenceMode guard;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& input : inputs) {
    const tok::RenderedPrompt p = chat_.prompt(input);
    prompts.push_back(tokenizer_.encode(p.text, p.add_special_tokens));
  }
  model::GenerateOptions opts;
  opts.max_new_tokens = recipe_.max_new_tokens;
  opts.greedy = true;
  opts.batch_size = batch_size_;
  opts.eos_ids = model_.config().eos_token_ids;
  if (opts.eos_ids.empty() && tokenizer_.post_eos_id()) opts.eos_ids.push_back(*tokenizer_.post_eos_id());
  std::vector<Verdict> out;
  for (const auto& g : model::generate(model_, prompts, opts))
    out.push_back(parse(recipe_, tokenizer_.decode(g.tokens, true)));
  return out;
}

}  // namespace sf::judge
