#include "judge/judge.hpp"

#include <algorithm>
#include <cmath>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "judge/kinds.hpp"
#include "model/config.hpp"
#include "model/model_files.hpp"

namespace sf::judge {
namespace {

std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }

// The recipe's prompt with every field filled by "x": a representative judge input.
std::string probe_input(const Recipe& r) {
  std::string out;
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    const char c = r.prompt[i];
    if ((c == '{' || c == '}') && i + 1 < r.prompt.size() && r.prompt[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      out += "x";
      i = r.prompt.find('}', i);
    } else {
      out += c;
    }
  }
  return out;
}

std::string judge_name(const Recipe& r, const Binding& b) {
  return b.where + ": judge '" + r.name + "'" + (r.where == b.where ? "" : " (" + r.where + ")");
}

tok::Tokenizer load_tokenizer(const Binding& b) { return model::load_tokenizer(b.path); }

void check_vocab(const Recipe& r, const Binding& b, const tok::Tokenizer& t, int64_t model_vocab) {
  if (t.vocab_size() > model_vocab)
    throw ConfigError(judge_name(r, b) + ": " + (b.path / "tokenizer.json").string() + " has " +
                      std::to_string(t.vocab_size()) + " ids, the model only " + std::to_string(model_vocab));
}

void preflight_lm(const Recipe& r, const Binding& b) {
  if (!b.chat_template)
    throw ConfigError(judge_name(r, b) + ": template: required for a " + kind_name(r.kind) +
                      " judge (a preset name or a mapping; never guessed)");
  const model::ModelConfig config = model::load_model_config(b.path);
  const tok::Tokenizer t = load_tokenizer(b);
  check_vocab(r, b, t, config.vocab_size);
  if (r.kind != Kind::kLabelProb) return;
  const std::string context = b.chat_template->prompt(probe_input(r)).text;
  const std::vector<int32_t> context_ids = t.encode(context, false);
  const std::string context_text = t.decode(context_ids);
  std::vector<std::vector<int32_t>> seen;
  for (const auto& label : r.labels) {
    const std::vector<int32_t> ids = continuation_ids(t, context, label);
    std::vector<int32_t> all = context_ids;
    all.insert(all.end(), ids.begin(), ids.end());
    const std::string spelled = t.decode(all);
    if (ids.empty() || spelled.size() < context_text.size() ||
        spelled.compare(0, context_text.size(), context_text) != 0 || spelled.substr(context_text.size()) != label)
      throw ConfigError(judge_name(r, b) + ": label " + quoted(label) + " is not in the tokenizer " +
                        (b.path / "tokenizer.json").string() + " (it reads back as " +
                        quoted(spelled.size() >= context_text.size() ? spelled.substr(context_text.size()) : spelled) +
                        ")");
    if (std::find(seen.begin(), seen.end(), ids) != seen.end())
      throw ConfigError(judge_name(r, b) + ": label " + quoted(label) + " has the same tokens as another label");
    seen.push_back(ids);
  }
}

void preflight_classifier(const Recipe& r, const Binding& b) {
  if (b.chat_template)
    throw ConfigError(judge_name(r, b) + ": template: a classifier reads its input as is (remove the key)");
  const RobertaConfig config = RobertaConfig::from_file(b.path / "config.json");
  if (config.num_labels != static_cast<int64_t>(r.labels.size())) {
    std::string classes;
    for (const auto& l : config.labels) classes += (classes.empty() ? "" : ", ") + l;
    throw ConfigError(judge_name(r, b) + ": " + (b.path / "config.json").string() + " has num_labels " +
                      std::to_string(config.num_labels) + " (" + classes + ") but the recipe declares " +
                      std::to_string(r.labels.size()) + " labels");
  }
  const tok::Tokenizer t = load_tokenizer(b);
  check_vocab(r, b, t, config.vocab_size);
  const std::string probe = probe_input(r);
  std::vector<int32_t> expect;
  if (t.post_bos_id()) expect.push_back(*t.post_bos_id());
  const auto body = t.encode(probe, false);
  expect.insert(expect.end(), body.begin(), body.end());
  if (t.post_eos_id()) expect.push_back(*t.post_eos_id());
  if (!t.post_bos_id() || !t.post_eos_id() || t.encode(probe, true) != expect)
    throw ConfigError(judge_name(r, b) + ": " + (b.path / "tokenizer.json").string() +
                      ": the post-processor must wrap the text as <s> ... </s> (RobertaProcessing)");
}

}  // namespace

std::vector<int32_t> continuation_ids(const tok::Tokenizer& tokenizer, const std::string& context,
                                      const std::string& label) {
  const std::vector<int32_t> prefix = tokenizer.encode(context, false);
  const std::vector<int32_t> full = tokenizer.encode(context + label, false);
  if (full.size() > prefix.size() && std::equal(prefix.begin(), prefix.end(), full.begin()))
    return {full.begin() + static_cast<std::ptrdiff_t>(prefix.size()), full.end()};
  return tokenizer.encode(label, false);
}

Verdict label_verdict(const Recipe& recipe, std::vector<double> raw) {
  if (raw.size() != recipe.labels.size())
    throw ShapeError(recipe.where + ": " + std::to_string(raw.size()) + " values for " +
                     std::to_string(recipe.labels.size()) + " labels");
  Verdict v;
  const double top = *std::max_element(raw.begin(), raw.end());
  double sum = 0;
  for (double x : raw) sum += std::exp(x - top);
  for (double x : raw) v.prob.push_back(std::exp(x - top) / sum);
  v.label = recipe.labels[static_cast<size_t>(std::max_element(raw.begin(), raw.end()) - raw.begin())];
  v.score = v.prob[recipe.positive_index()];
  v.raw = std::move(raw);
  return v;
}

void preflight(const Recipe& recipe, const Binding& binding) {
  for (const char* file : {"config.json", "tokenizer.json"}) {
    if (!std::filesystem::is_regular_file(binding.path / file))
      throw IoError(judge_name(recipe, binding) + ": " + (binding.path / file).string() +
                    " not found (a judge's folder holds config.json, tokenizer.json and the safetensors weights)");
  }
  if (recipe.kind == Kind::kClassifier) {
    preflight_classifier(recipe, binding);
  } else {
    preflight_lm(recipe, binding);
  }
}

std::unique_ptr<Judge> load_judge(const Recipe& recipe, const Binding& binding, torch::Device device,
                                  const dist::Comm& tensor_group) {
  preflight(recipe, binding);
  const torch::Dtype dtype = parse_dtype(binding.dtype, binding.where + ".dtype");
  tok::Tokenizer tokenizer = load_tokenizer(binding);
  if (recipe.kind == Kind::kClassifier)
    return std::make_unique<ClassifierJudge>(recipe, RobertaClassifier::load(binding.path, device, dtype),
                                             std::move(tokenizer), binding.batch_size);
  model::LoadOptions opts;
  opts.device = device;
  opts.dtype = dtype;
  opts.tensor_group = tensor_group;
  model::CausalLM model = model::CausalLM::load(binding.path, opts);
  if (recipe.kind == Kind::kLabelProb)
    return std::make_unique<LabelProbJudge>(recipe, std::move(model), std::move(tokenizer), *binding.chat_template,
                                            binding.batch_size);
  return std::make_unique<GenerateJudge>(recipe, std::move(model), std::move(tokenizer), *binding.chat_template,
                                         binding.batch_size);
}

}  // namespace sf::judge
