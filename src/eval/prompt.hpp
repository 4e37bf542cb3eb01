#pragma once
// The one place where a task's example becomes the text and token ids a model sees: the task's
// user message under the model's (or system's) chat template, then the task's answer prefix.
// extract (aligned answers and teacher forcing), evaluate (every system) and judge all call it,
// so the head is evaluated on exactly the prompts it was trained on.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/task.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::eval {

struct Prompt {
  std::string text;          // the rendered prompt, answer prefix included
  std::vector<int32_t> ids;  // its token ids (the template decides add_special_tokens)
};

// ShapeError naming the task and example when the prompt encodes to no tokens.
Prompt render_prompt(const Task& task, const Example& example, const tok::Tokenizer& tokenizer,
                     const tok::ChatTemplate& chat);

}  // namespace sf::eval
