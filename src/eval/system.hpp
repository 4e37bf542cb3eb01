#pragma once
// A named system of the study (study::SystemDef) ready to answer on one rank: its models loaded on
// the unit's device, composed into one model::Ensemble:
//   plain model        the model alone, under its template (or the system's own template, e.g. an
//                      in-context alignment prefix)
//   model + head       the head's apply() on the model's logits (and hidden states), the head for
//                      the unit's task when it was trained per task
//   proxy-tuning       logits = M + α·(E − Ā): three models in lock-step on the same tokens, each
//                      under its own template
// Every prompt goes through eval::render_prompt.
#include <string>
#include <vector>

#include "eval/prompt.hpp"
#include "eval/task.hpp"
#include "heads/head_set.hpp"
#include "model/generate.hpp"
#include "study/model_set.hpp"
#include "study/study.hpp"

namespace sf::eval {

class SystemRuntime {
 public:
  // models: study.models_of(def), loaded; heads: the system's head set (nullptr without a head),
  // on the models' device.
  SystemRuntime(const study::SystemDef& def, std::vector<const study::LoadedModel*> models,
                const heads::HeadSet* heads);

  const study::SystemDef& def() const { return def_; }
  const study::LoadedModel& main() const { return *models_[0]; }

  // The examples' prompts as the main model sees them (text and ids).
  std::vector<Prompt> main_prompts(const Task& task, const std::vector<Example>& examples) const;
  // The same rows for every member: member 0 is main_prompts' ids.
  model::MemberPrompts member_prompts(const Task& task, const std::vector<Example>& examples,
                                      const std::vector<Prompt>& main) const;
  // The decoding ensemble for a task (the head of that task when heads are per task).
  model::Ensemble ensemble(const std::string& task) const;
  // The stop strings of a task under this system: the task's, then the system's own.
  std::vector<std::string> stop_strings(const Task& task) const;

 private:
  const study::SystemDef& def_;
  std::vector<const study::LoadedModel*> models_;
  const heads::HeadSet* heads_;
  tok::ChatTemplate main_chat_;
};

}  // namespace sf::eval
