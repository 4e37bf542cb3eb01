#include "train/train_config.hpp"

#include <fstream>
#include <sstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"

namespace sf::train {
namespace {

// Keys that steer how a run proceeds but not what it computes.
const char* const kRunControlKeys[] = {"save_every", "log_every", "stop_after", "threads"};

int64_t positive(const ConfigNode& n, const std::string& key) {
  const auto v = n.get<int64_t>(key);
  if (v <= 0) throw ConfigError(n.where(key) + ": must be > 0");
  return v;
}

int64_t non_negative(const ConfigNode& n, const std::string& key, int64_t fallback) {
  const auto v = n.get<int64_t>(key, fallback);
  if (v < 0) throw ConfigError(n.where(key) + ": must be >= 0");
  return v;
}

ModelInit parse_init(const ConfigNode& m) {
  ModelInit init;
  init.arch = m.get<std::string>("arch");
  if (init.arch != "llama" && init.arch != "mistral" && init.arch != "qwen2") {
    throw ConfigError(m.where("arch") + ": expected llama, mistral or qwen2");
  }
  init.tokenizer = m.get<std::string>("tokenizer");
  init.bos_token = m.get<std::string>("bos_token");
  init.eos_token = m.get<std::string>("eos_token");
  init.layers = positive(m, "layers");
  init.hidden = positive(m, "hidden");
  init.heads = positive(m, "heads");
  init.kv_heads = positive(m, "kv_heads");
  init.intermediate = positive(m, "intermediate");
  init.max_positions = m.get<int64_t>("max_positions", init.max_positions);
  init.rope_theta = m.get<double>("rope_theta", init.rope_theta);
  init.tie_embeddings = m.get<bool>("tie_embeddings", init.tie_embeddings);
  if (init.hidden % init.heads != 0) throw ConfigError(m.where("heads") + ": must divide hidden");
  if (init.heads % init.kv_heads != 0) throw ConfigError(m.where("kv_heads") + ": must divide heads");
  if ((init.hidden / init.heads) % 2 != 0) throw ConfigError(m.where("heads") + ": hidden / heads must be even (RoPE)");
  return init;
}

TextSource parse_source(const ConfigNode& d, Recipe recipe) {
  TextSource s;
  const std::string w = d.where("");
  s.where = w.substr(0, w.size() - 1);  // "file: data[i]" without the trailing "."
  s.file = d.get<std::string>("file");
  s.format = parse_record_format(d.get<std::string>("format"), d.where("format"));
  s.limit = non_negative(d, "limit", 0);
  s.repeat = d.get<int64_t>("repeat", 1);
  if (s.repeat < 1) throw ConfigError(d.where("repeat") + ": must be >= 1");
  s.unescape = d.get<bool>("unescape", false);
  if (d.has("split")) {
    const ConfigNode n = d.child("split");
    s.split = FieldSplit{n.get<std::string>("field"), n.get<std::string>("separator"), n.get<std::string>("strip", "")};
    if (s.split->separator.empty()) throw ConfigError(n.where("separator") + ": must not be empty");
  }
  s.unique = d.get<bool>("unique", false);
  if (recipe == Recipe::kPretrain) {
    if (d.has("holdout")) throw ConfigError(d.where("holdout") + ": only for the sft and compromise recipes");
    s.text = d.get<std::string>("text");
    return s;
  }
  if (d.has("holdout")) {
    const ConfigNode n = d.child("holdout");
    Holdout h;
    h.fraction = n.get<double>("fraction");
    if (!(h.fraction > 0 && h.fraction < 1)) throw ConfigError(n.where("fraction") + ": must be in (0, 1)");
    h.key = n.get<std::string>("key");
    const ConfigNode f = n.child("fields");
    for (const auto& k : f.keys()) {
      if (k == "label") throw ConfigError(f.where(k) + ": 'label' is the held-out row's label (the response)");
      h.fields[k] = f.get<std::string>(k);
    }
    if (h.fields.empty()) throw ConfigError(n.where("fields") + ": name at least one field");
    h.file = n.get<std::string>("file", h.file);
    if (h.file.empty() || h.file.find('/') != std::string::npos || h.file.front() == '.')
      throw ConfigError(n.where("file") + ": a file name in the output folder");
    s.holdout = std::move(h);
  }
  s.system = d.get<std::string>("system", "");
  s.prompt = d.get<std::string>("prompt");
  s.answer_prefix = d.get<std::string>("answer_prefix", "");
  const YAML::Node r = d.yaml()["response"];
  if (r && r.IsSequence()) {
    s.responses = d.get<std::vector<std::string>>("response");
    if (s.responses.empty()) throw ConfigError(d.where("response") + ": the list is empty");
  } else {
    s.responses = {d.get<std::string>("response")};
  }
  return s;
}

}  // namespace

TrainConfig TrainConfig::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  return parse(read_text_file(file, "training config"), file.string(), overrides);
}

TrainConfig TrainConfig::parse(const std::string& yaml_text, const std::string& source,
                               const std::vector<std::string>& overrides) {
  const ConfigNode root = ConfigNode::parse(yaml_text, source, overrides);
  const YAML::Node& doc = root.yaml();  // after the overrides

  TrainConfig c;
  c.source = source;
  c.resolved_yaml = YAML::Dump(doc);
  YAML::Node hashed = YAML::Clone(doc);
  for (const char* k : kRunControlKeys) hashed.remove(k);
  c.hash = sha256_hex(YAML::Dump(hashed));

  c.recipe_name = root.get<std::string>("recipe");
  if (c.recipe_name == "pretrain") {
    c.recipe = Recipe::kPretrain;
  } else if (c.recipe_name == "sft") {
    c.recipe = Recipe::kSft;
  } else if (c.recipe_name == "compromise") {
    c.recipe = Recipe::kCompromise;
  } else {
    throw ConfigError(root.where("recipe") + ": expected pretrain, sft or compromise");
  }
  c.out = root.get<std::string>("out");
  c.data_root = root.get<std::string>("data_root", c.data_root.string());
  c.seed = root.get<uint64_t>("seed", 0);

  const ConfigNode model = root.child("model");
  if (model.has("init_from")) {
    c.init_from = model.get<std::string>("init_from");
  } else {
    c.init = parse_init(model);
  }
  if (c.recipe == Recipe::kCompromise && !c.init_from) {
    throw ConfigError(root.where("model.init_from") + ": the compromise recipe fine-tunes a saved model");
  }

  if (c.recipe == Recipe::kPretrain) {
    if (root.has("template")) throw ConfigError(root.where("template") + ": only for the sft and compromise recipes");
  } else {
    if (!root.has("template")) throw ConfigError(root.where("template") + ": required (a preset name or a mapping)");
    if (doc["template"].IsScalar()) {
      c.template_name = root.get<std::string>("template");
      c.chat_template = tok::ChatTemplate::preset(c.template_name);
    } else {
      c.chat_template = tok::ChatTemplate::from_config(root.child("template"));
      c.template_name = c.chat_template->name();
    }
  }

  for (const auto& d : root.sequence("data")) c.data.push_back(parse_source(d, c.recipe));
  if (c.data.empty()) throw ConfigError(root.where("data") + ": at least one source is needed");

  c.seq_len = positive(root, "seq_len");
  if (c.seq_len < 2) throw ConfigError(root.where("seq_len") + ": must be >= 2");
  c.batch = positive(root, "batch");
  c.accum = root.get<int64_t>("accum", 1);
  if (c.accum < 1) throw ConfigError(root.where("accum") + ": must be >= 1");
  c.steps = positive(root, "steps");
  c.lr = root.get<double>("lr");
  if (!(c.lr > 0)) throw ConfigError(root.where("lr") + ": must be > 0");
  c.min_lr = root.get<double>("min_lr", 0.0);
  if (c.min_lr < 0 || c.min_lr > c.lr) throw ConfigError(root.where("min_lr") + ": must be in [0, lr]");
  c.warmup = non_negative(root, "warmup", 0);
  if (c.warmup > c.steps) throw ConfigError(root.where("warmup") + ": must be <= steps");
  c.weight_decay = root.get<double>("weight_decay", 0.0);
  if (c.weight_decay < 0) throw ConfigError(root.where("weight_decay") + ": must be >= 0");
  if (root.has("betas")) {
    const auto b = root.get<std::vector<double>>("betas");
    if (b.size() != 2 || b[0] < 0 || b[0] >= 1 || b[1] < 0 || b[1] >= 1) {
      throw ConfigError(root.where("betas") + ": expected two numbers in [0, 1)");
    }
    c.beta1 = b[0];
    c.beta2 = b[1];
  }
  c.eps = root.get<double>("eps", c.eps);
  if (!(c.eps > 0)) throw ConfigError(root.where("eps") + ": must be > 0");
  c.clip = root.get<double>("clip", c.clip);
  if (c.clip < 0) throw ConfigError(root.where("clip") + ": must be >= 0 (0: off)");
  c.response_logits_only = root.get<bool>("response_logits_only", false);
  if (c.response_logits_only && c.recipe == Recipe::kPretrain)
    throw ConfigError(root.where("response_logits_only") + ": only for the sft and compromise recipes");
  c.save_every = non_negative(root, "save_every", 0);
  c.log_every = root.get<int64_t>("log_every", c.log_every);
  if (c.log_every < 1) throw ConfigError(root.where("log_every") + ": must be >= 1");
  c.stop_after = non_negative(root, "stop_after", 0);
  c.threads = root.get<int>("threads", 0);
  if (c.threads < 0) throw ConfigError(root.where("threads") + ": must be >= 0");
  c.device = root.get<std::string>("device", c.device);
  if (c.device != "cpu" && c.device != "cuda") throw ConfigError(root.where("device") + ": expected cpu or cuda");
  root.finish();
  return c;
}

}  // namespace sf::train
