#include "core/job.hpp"

#include <set>

#include "core/files.hpp"

namespace sf {
namespace {

const std::set<std::string> kSections = {"extract",    "heads",   "evaluate",    "reduce", "train",
                                         "compromise", "systems", "comparisons", "judges", "parallel"};
const std::set<std::string> kCommon = {"run_dir", "seed", "device", "threads", "data_root", "tasks", "models"};
const std::set<std::string> kDtypes = {"float32", "bfloat16", "float16"};

}  // namespace

void check_name(const std::string& name, const std::string& where) {
  const bool ok =
      !name.empty() && name != "." && name != ".." &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+") == std::string::npos;
  if (!ok) throw ConfigError(where + ": '" + name + "' is not a name (letters, digits and . _ - + only)");
}

Job Job::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  return parse(read_text_file(file, "job file"), file.string(), overrides);
}

Job Job::parse(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides) {
  return Job(ConfigNode::parse(yaml_text, source, overrides), source);
}

Job::Job(ConfigNode root, std::string source) : root_(std::move(root)), source_(std::move(source)) {
  if (!root_.has("systems") && root_.has("evaluate") && root_.child("evaluate").has("systems"))
    throw ConfigError(root_.where("evaluate.systems") +
                      ": a job of format v1; systems are now the top-level map `systems:` of named systems, "
                      "models a map of named models, and heads name the pair they come from (README: The job file)");
  run_dir_ = root_.get<std::string>("run_dir");
  seed_ = root_.get<uint64_t>("seed", 0);
  device_ = root_.get<std::string>("device", "cpu");
  if (device_ != "cpu" && device_ != "cuda") throw ConfigError(root_.where("device") + ": expected cpu or cuda");
  threads_ = root_.get<int>("threads", 0);
  if (threads_ < 0) throw ConfigError(root_.where("threads") + ": must be >= 0");
  if (root_.has("parallel")) {
    const ConfigNode parallel = root_.child("parallel");
    tensor_parallel_ = parallel.get<int>("tensor", 1);
    if (tensor_parallel_ < 1) throw ConfigError(parallel.where("tensor") + ": must be >= 1");
    parallel.finish();
  }
  data_root_ = root_.get<std::string>("data_root", "../shared/data");
  tasks_ = root_.get<std::vector<std::string>>("tasks", {});
  if (root_.has("models")) {
    const ConfigNode models = root_.child("models");
    for (const auto& name : models.keys()) {
      check_name(name, models.where(name));
      const ConfigNode m = models.child(name);
      ModelRef ref;
      ref.name = name;
      ref.path = m.get<std::string>("path");
      ref.dtype = m.get<std::string>("dtype", "float32");
      if (!kDtypes.count(ref.dtype)) throw ConfigError(m.where("dtype") + ": expected float32, bfloat16 or float16");
      if (!m.has("template"))
        throw ConfigError(m.where("template") + ": required (a preset name or a mapping; never guessed)");
      if (m.yaml()["template"].IsScalar()) {
        ref.template_name = m.get<std::string>("template");
      } else {
        ref.chat_template = m.child("template");
        ref.template_name = "custom";
      }
      // The template mapping is checked where templates are built (study::Study::from_job).
      for (const auto& key : m.keys())
        if (key != "path" && key != "template" && key != "dtype") throw ConfigError(m.where(key) + ": unknown key");
      models_.emplace(name, std::move(ref));
    }
  }
  for (const auto& k : root_.keys()) {
    if (!kSections.count(k) && !kCommon.count(k)) throw ConfigError(root_.where(k) + ": unknown key");
  }
}

const ModelRef& Job::model(const std::string& name) const {
  auto it = models_.find(name);
  if (it == models_.end()) throw ConfigError(source_ + ": models." + name + ": no such model");
  return it->second;
}

bool Job::has_section(const std::string& name) const { return root_.has(name); }

ConfigNode Job::section(const std::string& name) const {
  if (!kSections.count(name)) throw ConfigError(source_ + ": '" + name + "' is not a job section");
  if (!root_.has(name)) return ConfigNode(YAML::Node(YAML::NodeType::Map), source_, name);
  return root_.child(name);
}

std::vector<ConfigNode> Job::list(const std::string& name) const {
  if (!kSections.count(name)) throw ConfigError(source_ + ": '" + name + "' is not a job section");
  if (!root_.has(name)) return {};
  return root_.sequence(name);
}

std::string Job::resolved_yaml() const { return YAML::Dump(root_.yaml()); }

}  // namespace sf
