// Task files (configs/tasks/*.yaml): sources, prompts per template, generation, metric, truncation
// policy and judges; then the prompt texts a task makes for an input.
#include "eval/task.hpp"

#include "core/config.hpp"
#include "fuzz/targets/targets.hpp"

namespace sf::fuzz {

void task(const uint8_t* data, size_t size) {
  const eval::Task t = eval::Task::parse(ConfigNode::parse(text_of(data, size), "fuzz/task.yaml"));
  for (const char* templ : {"plain", "chatml", "llama2-chat", "custom"}) {
    (void)t.user_message("What is 2+2? {input} {x}", templ);
    (void)t.answer_prefix(templ);
  }
  (void)t.metric().score_names();
  (void)t.definition_yaml();
}

}  // namespace sf::fuzz
