#pragma once
// Which judges score which task's answers in a job: task files' recipes, the job's judges declared
// by the job itself (they replace a task's judge of the same metric), and the job's bindings. Every
// check that needs no model weights is done here, before any compute: each declared binding is used,
// prompts name only fields the task rows (or held-out rows) have, held-out labels are declared
// labels, and each bound judge passes judge::preflight (labels spelled, classifier classes).
#include <map>
#include <string>
#include <vector>

#include "eval/task.hpp"
#include "judge/spec.hpp"

namespace sf::judge {

// A bound judge scoring one task.
struct ActiveJudge {
  std::string task;
  Recipe recipe;
  Binding binding;
  std::string model_fingerprint;      // heads::model_fingerprint of the judge's folder
  std::string tokenizer_fingerprint;  // sha256 of its tokenizer.json
  std::string fingerprint;            // recipe + binding + model + tokenizer: identifies its verdicts
  // binding.heldout: its labelled rows (fields plus "label") and the file's sha256.
  std::vector<std::map<std::string, std::string>> heldout;
  std::string heldout_sha256;
  std::string id() const { return task + "/" + recipe.name; }
};

// One judged metric of a task and what becomes of it.
struct PlannedMetric {
  std::string task;
  std::string metric;
  std::string kind;                 // "judge" | "all_of"
  std::vector<std::string> judges;  // the judge, or the all_of's judges
  std::string status;               // "scored" | "unscored" (declared, not bound) | "omitted" (optional, not bound)
  std::string note;                 // one line for unscored / omitted metrics
};

struct Plan {
  std::vector<ActiveJudge> judges;     // in task order, then declaration order
  std::vector<PlannedMetric> metrics;  // every judged metric of every task, declaration order
  nlohmann::json to_json() const;      // the `metrics` attribute of the judgments file
};

// Fields every prompt may use besides the task row's: {question} (the example's prompt field),
// {answer} (the system's answer, trimmed as the recipe says) and {reference} (the recipe's
// `reference` field).
std::map<std::string, std::string> judge_fields(const Recipe& recipe, const std::map<std::string, std::string>& row,
                                                const std::string& question, const std::string& answer);
// The judge's input: the recipe's prompt filled from `fields`.
std::string fill_prompt(const Recipe& recipe, const std::map<std::string, std::string>& fields);

// `tasks` with their test examples (all rows of the split: a task's fields are checked on them).
Plan make_plan(const std::vector<eval::Task>& tasks, const std::vector<std::vector<eval::Example>>& examples,
               const std::map<std::string, Binding>& bindings);

}  // namespace sf::judge
