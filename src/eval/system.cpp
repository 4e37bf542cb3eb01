#include "eval/system.hpp"

#include "core/error.hpp"

namespace sf::eval {

SystemRuntime::SystemRuntime(const study::SystemDef& def, std::vector<const study::LoadedModel*> models,
                             const heads::HeadSet* heads)
    : def_(def),
      models_(std::move(models)),
      heads_(heads),
      main_chat_(def.template_override ? study::template_from(*def.template_override) : models_.at(0)->chat) {
  if (def.proxy && models_.size() != 3)
    throw ShapeError("system " + def.name + ": proxy-tuning needs 3 models, got " + std::to_string(models_.size()));
  if (!def.head.empty() && !heads_) throw ShapeError("system " + def.name + ": head " + def.head + " is not loaded");
}

namespace {

ContextLimit limit_of(const study::LoadedModel& m, int64_t reserve) {
  return {m.name, m.lm.config().max_position_embeddings, reserve};
}

}  // namespace

std::vector<Prompt> SystemRuntime::main_prompts(const Task& task, const std::vector<Example>& examples,
                                                const std::vector<int64_t>& reserve) const {
  std::vector<Prompt> out;
  for (size_t i = 0; i < examples.size(); ++i)
    out.push_back(render_prompt(task, examples[i], main().tokenizer, main_chat_, limit_of(main(), reserve.at(i))));
  return out;
}

model::MemberPrompts SystemRuntime::member_prompts(const Task& task, const std::vector<Example>& examples,
                                                   const std::vector<Prompt>& main,
                                                   const std::vector<int64_t>& reserve) const {
  model::MemberPrompts p(models_.size());
  for (const auto& m : main) p[0].push_back(m.ids);
  for (size_t m = 1; m < models_.size(); ++m) {
    for (size_t i = 0; i < examples.size(); ++i)
      p[m].push_back(render_prompt(task, examples[i], models_[m]->tokenizer, models_[m]->chat,
                                   limit_of(*models_[m], reserve.at(i)))
                         .ids);
  }
  return p;
}

model::Ensemble SystemRuntime::ensemble(const std::string& task) const {
  model::Ensemble e;
  e.members.push_back({&models_[0]->lm, 1.0});
  if (def_.proxy) {
    e.members.push_back({&models_[1]->lm, def_.proxy->alpha});
    e.members.push_back({&models_[2]->lm, -def_.proxy->alpha});
  }
  if (heads_) {
    const heads::Head* head = &heads_->for_task(task);
    const model::VocabParallel* vocab = &models_[0]->lm.vocab();
    e.transform = [head, vocab](const torch::Tensor& logits, const torch::Tensor& hidden) {
      return head->apply(logits, hidden, *vocab);  // [N,V] ([N,V_local] when split), on the head's device (checked)
    };
  }
  return e;
}

std::vector<std::string> SystemRuntime::stop_strings(const Task& task) const {
  std::vector<std::string> s = task.generation().stop;
  s.insert(s.end(), def_.stop.begin(), def_.stop.end());
  return s;
}

}  // namespace sf::eval
