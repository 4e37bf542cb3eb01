#pragma once
// Metric dispatch: the per-example scores a task's metric gives an answer (the rules themselves
// are in metrics.hpp). Multiple-choice tasks are scored from log-likelihoods (mc_scores) instead.
#include <string>
#include <utility>
#include <vector>

#include "eval/task.hpp"

namespace sf::eval {

struct AnswerScore {
  std::vector<std::pair<std::string, double>> scores;  // metric name → value (empty: unscored here)
  std::string extracted;  // number_match: the canonical last number; refusal_keywords: the keyword found
};

// FormatError naming the task file and example when a field the metric needs is missing or the
// gold answer is malformed.
AnswerScore score_answer(const Task& task, const Example& example, const std::string& answer);

}  // namespace sf::eval
