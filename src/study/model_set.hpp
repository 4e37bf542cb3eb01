#pragma once
// The job's models as one rank loads them for its units of work: weights on the rank's device in
// the model's dtype, tokenizer, chat template and end-of-sequence ids, resolved in one place for
// every stage. A ModelSet keeps the models the current unit needs and drops the others, so a rank
// holds at most one system's models at a time (stages order their units system by system).
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "model/causal_lm.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::study {

// The chat template a model entry of the job names (a preset or a mapping).
tok::ChatTemplate template_of(const ModelRef& ref);
// A system's own template (preset name or mapping, e.g. an in-context prefix).
tok::ChatTemplate template_from(const ConfigNode& node);

// The device of this rank's units: cpu, or cuda:<local rank> (ConfigError when the job asks for
// cuda and this build or machine has none).
torch::Device rank_device(const Job& job, const dist::Comm& comm);

struct LoadedModel {
  std::string name;
  model::CausalLM lm;
  tok::Tokenizer tokenizer;
  tok::ChatTemplate chat;
  std::vector<int64_t> eos_ids;  // config.json's eos_token_id(s), else the tokenizer's EOS
};

class ModelSet {
 public:
  ModelSet(const Job& job, torch::Device device) : job_(job), device_(device) {}
  // The models `names`, loading the missing ones; models not in `names` are released first.
  std::vector<const LoadedModel*> acquire(const std::vector<std::string>& names);
  torch::Device device() const { return device_; }

 private:
  const Job& job_;
  torch::Device device_;
  std::map<std::string, std::unique_ptr<LoadedModel>> loaded_;
};

// Loads one model of the job on `device`.
std::unique_ptr<LoadedModel> load_model(const ModelRef& ref, torch::Device device);

}  // namespace sf::study
