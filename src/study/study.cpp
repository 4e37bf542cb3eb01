#include "study/study.hpp"

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "heads/base_model.hpp"
#include "heads/head_set.hpp"
#include "heads/variant.hpp"
#include "model/model_files.hpp"
#include "study/model_set.hpp"

namespace sf::study {
namespace {

namespace fs = std::filesystem;

Pair read_pair(const ConfigNode& node, const Job& job) {
  Pair p{node.get<std::string>("base"), node.get<std::string>("aligned")};
  node.finish();
  job.model(p.base);
  job.model(p.aligned);
  if (p.base == p.aligned) throw ConfigError(node.where("aligned") + ": a pair needs two different models");
  return p;
}

HeadTraining read_training(const ConfigNode& s, const Job& job) {
  HeadTraining t;
  t.lr = s.get<double>("lr", t.lr);
  t.epochs = s.get<int64_t>("epochs", t.epochs);
  t.batch_tokens = s.get<int64_t>("batch_tokens", t.batch_tokens);
  t.val_fraction = s.get<double>("val_fraction", t.val_fraction);
  const auto mb = s.get<int64_t>("max_memory_mb", t.max_memory_bytes >> 20);
  t.per_task = s.get<bool>("per_task", false);
  t.seed = s.get<uint64_t>("seed", job.seed());
  if (!(t.lr > 0)) throw ConfigError(s.where("lr") + ": must be positive");
  if (t.epochs < 0) throw ConfigError(s.where("epochs") + ": must be >= 0");
  if (t.batch_tokens <= 0) throw ConfigError(s.where("batch_tokens") + ": must be positive");
  if (!(t.val_fraction > 0 && t.val_fraction < 1)) throw ConfigError(s.where("val_fraction") + ": must be in (0, 1)");
  if (mb <= 0 || mb > (int64_t{1} << 40)) throw ConfigError(s.where("max_memory_mb") + ": must be in [1, 2^40]");
  t.max_memory_bytes = mb << 20;
  return t;
}

std::string tokenizer_of(const Job& job, const std::string& model) {
  return heads::tokenizer_fingerprint(job.model(model).path);
}

model::ModelConfig config_of(const Job& job, const std::string& model) {
  return model::load_model_config(job.model(model).path);
}

}  // namespace

Study Study::from_job(const Job& job) {
  Study st;
  for (const auto& [name, ref] : job.models()) template_of(ref);  // unknown template keys are errors now
  // Heads.
  if (job.has_section("heads")) {
    const ConfigNode s = job.section("heads");
    const HeadTraining common = read_training(s, job);
    const std::string init = s.get<std::string>("init", "zero");
    std::optional<Pair> default_from;
    if (s.has("from")) default_from = read_pair(s.child("from"), job);
    const auto variants = s.sequence("variants");
    if (variants.empty()) throw ConfigError(s.where("variants") + ": list at least one head");
    for (size_t i = 0; i < variants.size(); ++i) {
      const ConfigNode& v = variants[i];
      const std::string where = s.where("variants") + "[" + std::to_string(i) + "]";
      HeadDef h;
      h.spec.name = v.get<std::string>("name");
      check_name(h.spec.name, where + ".name");
      for (const HeadDef& other : st.heads_)
        if (other.spec.name == h.spec.name) throw ConfigError(where + ".name: '" + h.spec.name + "' is used twice");
      if (v.has("file")) {
        h.file = v.get<std::string>("file");
        if (v.has("type") || v.has("from"))
          throw ConfigError(where + ": a head from `file` is trained elsewhere; it takes no type or from");
      } else {
        h.spec.type = v.get<std::string>("type");
        h.spec.rank = v.get<int64_t>("rank", 0);
        h.spec.k = v.get<int64_t>("k", 0);
        h.spec.init = v.get<std::string>("init", init);
        heads::validate(h.spec, where);
        h.from = v.has("from") ? read_pair(v.child("from"), job) : default_from;
        if (!h.from) throw ConfigError(where + ".from: which pair is the head trained on? (or heads.from)");
        h.training = common;
        h.training.lr = v.get<double>("lr", common.lr);
        h.training.epochs = v.get<int64_t>("epochs", common.epochs);
        if (!(h.training.lr > 0) || h.training.epochs < 0)
          throw ConfigError(where + ": lr must be positive, epochs >= 0");
        h.file = job.run_dir() / "heads" / (h.spec.name + ".safetensors");
        if (std::find(st.pairs_.begin(), st.pairs_.end(), *h.from) == st.pairs_.end()) st.pairs_.push_back(*h.from);
      }
      st.heads_.push_back(std::move(h));
    }
    s.finish();
  }
  // Systems.
  if (job.has_section("systems")) {
    const ConfigNode s = job.section("systems");
    for (const auto& name : s.keys()) {
      check_name(name, s.where(name));
      const ConfigNode n = s.child(name);
      SystemDef d;
      d.name = name;
      d.model = n.get<std::string>("model");
      job.model(d.model);
      d.head = n.get<std::string>("head", "");
      if (!d.head.empty()) st.head(d.head);
      if (n.has("proxy")) {
        const ConfigNode p = n.child("proxy");
        d.proxy = Proxy{p.get<std::string>("expert"), p.get<std::string>("anti_expert"), p.get<double>("alpha", 1.0)};
        p.finish();
        job.model(d.proxy->expert);
        job.model(d.proxy->anti_expert);
        if (!d.head.empty()) throw ConfigError(n.where("proxy") + ": a system takes a head or a proxy, not both");
      }
      if (n.has("template")) {
        if (n.yaml()["template"].IsScalar()) {
          YAML::Node preset(YAML::NodeType::Map);
          preset["preset"] = n.get<std::string>("template");
          d.template_override = ConfigNode(preset, n.source(), n.where("template"));
        } else {
          d.template_override = n.child("template");
        }
        template_from(*d.template_override);  // every key checked (and a prefix file read) now
      }
      d.stop = n.get<std::vector<std::string>>("stop", {});
      n.finish();
      st.systems_.push_back(std::move(d));
    }
  }
  // Comparisons.
  std::set<std::string> names;
  for (const ConfigNode& c : job.list("comparisons")) {
    Comparison cmp;
    cmp.name = c.get<std::string>("name");
    check_name(cmp.name, c.where("name"));
    if (!names.insert(cmp.name).second) throw ConfigError(c.where("name") + ": '" + cmp.name + "' is used twice");
    cmp.base = c.get<std::string>("base");
    cmp.aligned = c.get<std::string>("aligned");
    cmp.systems = c.get<std::vector<std::string>>("systems", {});
    c.finish();
    st.system(cmp.base);
    st.system(cmp.aligned);
    if (cmp.base == cmp.aligned)
      throw ConfigError(c.where("aligned") + ": comparison '" + cmp.name + "' has the same system '" + cmp.base +
                        "' as base and aligned; (S − B)/(A − B) needs two different systems");
    for (const auto& sys : cmp.systems) st.system(sys);
    st.comparisons_.push_back(std::move(cmp));
  }
  return st;
}

const HeadDef& Study::head(const std::string& name) const {
  for (const auto& h : heads_)
    if (h.spec.name == name) return h;
  throw ConfigError("heads: no head named '" + name + "'");
}

const SystemDef& Study::system(const std::string& name) const {
  for (const auto& s : systems_)
    if (s.name == name) return s;
  throw ConfigError("systems: no system named '" + name + "'");
}

std::vector<std::string> Study::models_of(const SystemDef& s) const {
  std::vector<std::string> out{s.model};
  if (s.proxy) {
    out.push_back(s.proxy->expert);
    out.push_back(s.proxy->anti_expert);
  }
  return out;
}

std::string Study::describe(const SystemDef& s) const {
  std::string d = s.model;
  if (!s.head.empty()) {
    const HeadDef& h = head(s.head);
    d += " + head " + h.spec.name;
    d += h.from ? " (" + h.spec.type + ", from " + h.from->base + " → " + h.from->aligned + ")"
                : " (from " + h.file.string() + ")";
  }
  if (s.proxy) {
    char alpha[32];
    std::snprintf(alpha, sizeof(alpha), "%g", s.proxy->alpha);
    d += " + " + std::string(alpha) + "·(" + s.proxy->expert + " − " + s.proxy->anti_expert + ") (proxy-tuning)";
  }
  if (s.template_override) {
    const YAML::Node& t = s.template_override->yaml();
    if (t["prefix_file"]) {
      d += ", in-context prefix " + t["prefix_file"].as<std::string>();
    } else {
      d += ", template " + (t["preset"] ? t["preset"].as<std::string>() : std::string("custom"));
    }
  }
  return d;
}

void Study::check_compatibility(const Job& job) const {
  for (const Pair& p : pairs_) {
    if (tokenizer_of(job, p.base) != tokenizer_of(job, p.aligned))
      throw ConfigError(job.source() + ": pair " + p.base + " → " + p.aligned +
                        ": the two models have different tokenizers (tokenizer.json differs)");
  }
  for (const SystemDef& s : systems_) {
    const std::string tok = tokenizer_of(job, s.model);
    if (s.proxy) {
      for (const std::string& m : {s.proxy->expert, s.proxy->anti_expert}) {
        if (tokenizer_of(job, m) != tok || config_of(job, m).vocab_size != config_of(job, s.model).vocab_size)
          throw ConfigError(job.source() + ": systems." + s.name + ": proxy model " + m +
                            " does not share the tokenizer of " + s.model);
      }
    }
    if (s.head.empty()) continue;
    const HeadDef& h = head(s.head);
    const model::ModelConfig target = config_of(job, s.model);
    std::string source, head_tok, type;
    int64_t hidden = 0, vocab = 0;
    if (h.from) {
      source = h.from->base;
      head_tok = tokenizer_of(job, source);
      const model::ModelConfig c = config_of(job, source);
      hidden = heads::variant_of(h.spec.type, h.spec.name).uses_hidden() ? c.hidden_size : 0;
      vocab = c.vocab_size;
      type = h.spec.type;
    } else {
      if (!fs::exists(h.file))
        throw ConfigError(job.source() + ": heads." + h.spec.name + ": " + h.file.string() + " does not exist");
      const auto meta = heads::HeadSet::read_metadata(h.file);
      source = h.file.string();
      head_tok = meta.count("tokenizer_hash") ? meta.at("tokenizer_hash") : "";
      hidden = std::stoll(meta.at("hidden_size"));
      vocab = std::stoll(meta.at("vocab_size"));
      type = meta.at("type");
    }
    if (head_tok != tok || vocab != target.vocab_size)
      throw ConfigError(job.source() + ": systems." + s.name + ": head " + h.spec.name + " (trained on " + source +
                        ") cannot go on " + s.model + ": the tokenizers differ");
    if (hidden > 0 && hidden != target.hidden_size)
      throw ConfigError(job.source() + ": systems." + s.name + ": " + type + " head " + h.spec.name +
                        " reads hidden states of size " + std::to_string(hidden) + " (" + source + "), but " + s.model +
                        " has hidden size " + std::to_string(target.hidden_size));
  }
}

fs::path Study::extract_dir(const Job& job, const Pair& p) const { return job.run_dir() / "extract" / p.id(); }
fs::path Study::logits_file(const Job& job, const Pair& p) const { return extract_dir(job, p) / "logits.h5"; }

}  // namespace sf::study
