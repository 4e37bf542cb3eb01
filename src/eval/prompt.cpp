#include "eval/prompt.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/error.hpp"

namespace sf::eval {
namespace {

Prompt render(const Task& task, const std::string& input, const tok::Tokenizer& tokenizer,
              const tok::ChatTemplate& chat) {
  const tok::RenderedPrompt r = chat.prompt(task.user_message(input, chat.name()));
  Prompt p;
  p.text = r.text + task.answer_prefix(chat.name());
  p.ids = tokenizer.encode(p.text, r.add_special_tokens);
  return p;
}

}  // namespace

Prompt render_prompt(const Task& task, const Example& example, const tok::Tokenizer& tokenizer,
                     const tok::ChatTemplate& chat, const ContextLimit& limit) {
  const std::string where = "task " + task.name() + " example " + std::to_string(example.id);
  Prompt p = render(task, example.input, tokenizer, chat);
  if (p.ids.empty()) throw ShapeError(where + ": the prompt has no tokens");
  if (limit.max_positions <= 0) return p;
  const auto size = [](const Prompt& q) { return static_cast<int64_t>(q.ids.size()); };
  const int64_t budget = limit.max_positions - limit.reserve;
  if (size(p) <= budget) return p;
  if (budget < 1)
    throw ShapeError(where + ": model " + limit.model + "'s max_position_embeddings " +
                     std::to_string(limit.max_positions) + " leave no room for a prompt before " +
                     std::to_string(limit.reserve) + " answer positions");
  const std::string context = "model " + limit.model + "'s max_position_embeddings " +
                              std::to_string(limit.max_positions) + " with " + std::to_string(limit.reserve) +
                              " positions kept for the answer";
  if (task.truncate() == Truncate::kError)
    throw ShapeError(where + ": the prompt has " + std::to_string(size(p)) + " tokens, more than " + context +
                     " allow (" + task.source() +
                     ": truncate: error; `truncate: left` drops the start of long inputs)");
  // Drop the input's first tokens, as many as the prompt is too long, and re-render until it fits
  // (tokens merge differently at the new boundary, so one pass may not be exact).
  const std::vector<int32_t> input = tokenizer.encode(example.input, false);
  int64_t drop = 0;
  while (size(p) > budget) {
    drop += std::max<int64_t>(1, size(p) - budget);
    if (drop >= static_cast<int64_t>(input.size())) {
      p = render(task, "", tokenizer, chat);
      drop = static_cast<int64_t>(input.size());
      if (size(p) > budget)
        throw ShapeError(where + ": even without its input the prompt has " + std::to_string(size(p)) +
                         " tokens, more than " + context + " allow");
      break;
    }
    const std::vector<int32_t> kept(input.begin() + drop, input.end());
    p = render(task, tokenizer.decode(kept, false), tokenizer, chat);
  }
  p.dropped_tokens = drop;
  spdlog::debug("{}: truncate left: dropped the first {} tokens of the input for model {}", where, drop, limit.model);
  return p;
}

}  // namespace sf::eval
