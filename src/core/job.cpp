#include "core/job.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "core/files.hpp"

namespace sf {
namespace {

const std::set<std::string> kSections = {"extract", "heads", "evaluate", "judges", "reduce", "train", "compromise"};
const std::set<std::string> kDtypes = {"float32", "bfloat16", "float16"};

}  // namespace

Job Job::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  return parse(read_text_file(file, "job file"), file.string(), overrides);
}

Job Job::parse(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides) {
  return Job(ConfigNode::parse(yaml_text, source, overrides), source);
}

Job::Job(ConfigNode root, std::string source) : root_(std::move(root)), source_(std::move(source)) {
  run_dir_ = root_.get<std::string>("run_dir");
  seed_ = root_.get<uint64_t>("seed", 0);
  device_ = root_.get<std::string>("device", "cpu");
  if (device_ != "cpu" && device_ != "cuda") throw ConfigError(root_.where("device") + ": expected cpu or cuda");
  threads_ = root_.get<int>("threads", 0);
  if (threads_ < 0) throw ConfigError(root_.where("threads") + ": must be >= 0");
  data_root_ = root_.get<std::string>("data_root", "../shared/data");
  tasks_ = root_.get<std::vector<std::string>>("tasks", {});
  const ConfigNode models = root_.child("models");
  for (const auto& role : models.keys()) {
    const ConfigNode m = models.child(role);
    ModelRef ref;
    ref.role = role;
    ref.path = m.get<std::string>("path");
    ref.dtype = m.get<std::string>("dtype", "float32");
    if (!kDtypes.count(ref.dtype)) throw ConfigError(m.where("dtype") + ": expected float32, bfloat16 or float16");
    if (m.has("template")) {
      const YAML::Node t = m.yaml()["template"];
      if (t.IsScalar()) {
        ref.template_name = m.get<std::string>("template");
      } else {
        ref.chat_template = m.child("template");
        ref.template_name = "custom";
      }
    } else {
      throw ConfigError(m.where("template") + ": required (a preset name or a mapping; never guessed)");
    }
    models_.emplace(role, std::move(ref));
  }
  // Stage sections are read by their stages; here only their names are checked.
  for (const auto& k : root_.keys()) {
    if (kSections.count(k)) continue;
    if (k == "run_dir" || k == "seed" || k == "device" || k == "threads" || k == "data_root" || k == "tasks" ||
        k == "models")
      continue;
    throw ConfigError(root_.where(k) + ": unknown key");
  }
}

const ModelRef& Job::model(const std::string& role) const {
  auto it = models_.find(role);
  if (it == models_.end()) throw ConfigError(source_ + ": models." + role + ": required model is missing");
  return it->second;
}

bool Job::has_section(const std::string& name) const { return root_.has(name); }

ConfigNode Job::section(const std::string& name) const {
  if (!kSections.count(name)) throw ConfigError(source_ + ": '" + name + "' is not a stage section");
  if (!root_.has(name)) return ConfigNode(YAML::Node(YAML::NodeType::Map), source_, name);
  return root_.child(name);
}

std::string Job::resolved_yaml() const { return YAML::Dump(root_.yaml()); }

}  // namespace sf
