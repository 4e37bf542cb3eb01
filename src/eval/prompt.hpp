#pragma once
// The one place where a task's example becomes the text and token ids a model sees: the task's
// user message under the model's (or system's) chat template, then the task's answer prefix.
// extract (aligned answers and teacher forcing), evaluate (every system) and judge all call it,
// so the head is evaluated on exactly the prompts it was trained on.
//
// A prompt never runs past the model's trained context: with `reserve` positions kept for what
// follows it (new tokens, scored answers), a prompt of more than max_position_embeddings - reserve
// tokens is cut or refused by the task's `truncate:` policy (eval::Truncate). `left` drops tokens
// from the start of the example's text (the template and the answer prefix stay whole), re-rendering
// until the prompt fits; it depends on the example, tokenizer and limit only, never on batching.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/task.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::eval {

struct Prompt {
  std::string text;            // the rendered prompt, answer prefix included
  std::vector<int32_t> ids;    // its token ids (the template decides add_special_tokens)
  int64_t dropped_tokens = 0;  // tokens of the example's text dropped by `truncate: left`
};

// The context a prompt must fit in.
struct ContextLimit {
  std::string model;          // the model's name, for messages
  int64_t max_positions = 0;  // the model's max_position_embeddings; 0: no limit
  int64_t reserve = 0;        // positions kept after the prompt
};

// ShapeError naming the task and example when the prompt encodes to no tokens, or (naming the
// model too) when it does not fit and the task's policy is `error`, or when even the template
// alone does not fit.
Prompt render_prompt(const Task& task, const Example& example, const tok::Tokenizer& tokenizer,
                     const tok::ChatTemplate& chat, const ContextLimit& limit);

}  // namespace sf::eval
