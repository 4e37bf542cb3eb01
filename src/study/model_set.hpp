#pragma once
// The job's models as one rank loads them for its units of work: weights on the rank's device in
// the model's dtype, tokenizer, chat template and end-of-sequence ids, resolved in one place for
// every stage. A ModelSet keeps the models the current unit needs and drops the others, so a rank
// holds at most one system's models at a time (stages order their units system by system).
// With a tensor group (the job's parallel.tensor > 1, dist/layout.hpp) every model is split over the
// group's ranks (CausalLM::load), which then work on the same units together.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/job.hpp"
#include "dist/comm.hpp"
#include "model/causal_lm.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::study {

// The chat template a model entry of the job names (a preset or a mapping).
tok::ChatTemplate template_of(const ModelRef& ref);
// A system's own template (preset name or mapping, e.g. an in-context prefix).
tok::ChatTemplate template_from(const ConfigNode& node);

// The device of this rank's units: cpu, or cuda:<local rank> (dist::rank_cuda_device: ConfigError
// when the job asks for cuda and this build, machine or rank has none).
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
  ModelSet(const Job& job, torch::Device device, dist::Comm tensor_group = {})
      : job_(job), device_(device), tensor_group_(std::move(tensor_group)) {}
  // The models `names`, loading the missing ones; models not in `names` are released first.
  std::vector<const LoadedModel*> acquire(const std::vector<std::string>& names);

 private:
  const Job& job_;
  torch::Device device_;
  dist::Comm tensor_group_;
  std::map<std::string, std::unique_ptr<LoadedModel>> loaded_;
};

// Loads one model of the job on `device`, split over `tensor_group` (every rank of the group calls
// this together).
std::unique_ptr<LoadedModel> load_model(const ModelRef& ref, torch::Device device, const dist::Comm& tensor_group = {});

}  // namespace sf::study
