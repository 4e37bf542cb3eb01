#pragma once
// Prompt templates: explicit, named presets or templates from config. Never guessed from a
// model's name or path.
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace sf::tok {

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// What the model sees: the rendered text and whether to encode it with add_special_tokens
// (true for plain/alpaca on base models, whose BOS comes from the post-processor; false for
// chat templates, which spell their special tokens in the text).
struct RenderedPrompt {
  std::string text;
  bool add_special_tokens = false;
};

class ChatTemplate {
 public:
  // Presets: plain, alpaca, llama2-chat, chatml, llama3, mistral-inst, zephyr.
  static ChatTemplate preset(const std::string& name);
  static std::vector<std::string> preset_names();
  // A template from config: either {preset: NAME} or explicit slots (see README); `prefix_file`
  // reads the prefix from a file (in-context alignment prompts).
  static ChatTemplate from_config(const ConfigNode& node);

  // Renders a conversation; with add_generation_prompt the assistant turn is opened so the model
  // continues with its answer.
  RenderedPrompt render(const std::vector<Message>& conversation, bool add_generation_prompt = true) const;
  // One user turn with an optional system prompt.
  RenderedPrompt prompt(const std::string& user, const std::string& system = "") const;

  const std::string& name() const { return name_; }

  struct Slots;

 private:
  std::string name_;
  std::shared_ptr<const Slots> slots_;
};

}  // namespace sf::tok
