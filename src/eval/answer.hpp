#pragma once
// Answering one unit of work: a chunk of one task's test examples by one system. Generative
// tasks are answered greedily and scored by the task's metric; multiple-choice tasks are scored by
// the log-likelihood the system gives each listed answer after the prompt.
#include <cstdint>
#include <vector>

#include "eval/results.hpp"
#include "eval/system.hpp"
#include "eval/task.hpp"

namespace sf::eval {

struct AnswerSettings {
  int64_t batch_size = 8;
  int64_t record_top_k = 20;
  int64_t max_new_tokens_cap = 0;  // 0: the task's max_new_tokens
};

// Rows in example order. `tokens` is increased by the tokens generated or scored.
std::vector<Row> answer_unit(const Task& task, const SystemRuntime& system, const std::vector<Example>& examples,
                             const AnswerSettings& settings, int64_t* tokens);

}  // namespace sf::eval
