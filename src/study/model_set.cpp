#include "study/model_set.hpp"

#include <algorithm>

#include "core/dtype.hpp"
#include "dist/comm.hpp"
#include "dist/layout.hpp"
#include "model/model_files.hpp"

namespace sf::study {

tok::ChatTemplate template_of(const ModelRef& ref) {
  return ref.chat_template ? tok::ChatTemplate::from_config(*ref.chat_template)
                           : tok::ChatTemplate::preset(ref.template_name);
}

tok::ChatTemplate template_from(const ConfigNode& node) { return tok::ChatTemplate::from_config(node); }

torch::Device rank_device(const Job& job, const dist::Comm& comm) {
  return job.device() == "cpu" ? torch::Device(torch::kCPU) : dist::rank_cuda_device(job.source(), comm);
}

std::unique_ptr<LoadedModel> load_model(const ModelRef& ref, torch::Device device, const dist::Comm& tensor_group) {
  model::LoadOptions opts;
  opts.device = device;
  opts.tensor_group = tensor_group;
  opts.dtype = parse_dtype(ref.dtype, "models." + ref.name + ".dtype");
  auto m = std::unique_ptr<LoadedModel>(new LoadedModel{
      ref.name, model::CausalLM::load(ref.path, opts), model::load_tokenizer(ref.path), template_of(ref), {}});
  m->eos_ids = m->lm.config().eos_token_ids;
  if (m->eos_ids.empty() && m->tokenizer.post_eos_id()) m->eos_ids.push_back(*m->tokenizer.post_eos_id());
  return m;
}

std::vector<const LoadedModel*> ModelSet::acquire(const std::vector<std::string>& names) {
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    it = std::find(names.begin(), names.end(), it->first) == names.end() ? loaded_.erase(it) : std::next(it);
  }
  std::vector<const LoadedModel*> out;
  for (const auto& name : names) {
    auto it = loaded_.find(name);
    if (it == loaded_.end()) it = loaded_.emplace(name, load_model(job_.model(name), device_, tensor_group_)).first;
    out.push_back(it->second.get());
  }
  return out;
}

}  // namespace sf::study
