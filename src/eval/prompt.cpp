#include "eval/prompt.hpp"

#include "core/error.hpp"

namespace sf::eval {

Prompt render_prompt(const Task& task, const Example& example, const tok::Tokenizer& tokenizer,
                     const tok::ChatTemplate& chat) {
  const tok::RenderedPrompt r = chat.prompt(task.user_message(example.input, chat.name()));
  Prompt p;
  p.text = r.text + task.answer_prefix(chat.name());
  p.ids = tokenizer.encode(p.text, r.add_special_tokens);
  if (p.ids.empty())
    throw ShapeError("task " + task.name() + " example " + std::to_string(example.id) + ": the prompt has no tokens");
  return p;
}

}  // namespace sf::eval
