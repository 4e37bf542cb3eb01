#include "heads/head_set.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "heads/variant.hpp"
#include "io/safetensors.hpp"

namespace sf::heads {
namespace {

int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(file + ": metadata '" + key + "' is missing");
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size() || v < 0)
    throw FormatError(file + ": metadata '" + key + "' = '" + it->second + "' is not a non-negative integer");
  return v;
}

std::string meta_str(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(file + ": metadata '" + key + "' is missing");
  return it->second;
}

void check_format(const std::map<std::string, std::string>& meta, const std::string& where) {
  auto fmt = meta.find(kFormatKey);
  if (fmt == meta.end()) throw FormatError(where + ": no metadata '" + kFormatKey + "' (not a superficial head)");
  if (fmt->second == "superficial-head-v1")
    throw FormatError(where +
                      ": a superficial-head-v1 file (bb heads were then served on the full vocabulary, "
                      "unlike their training objective); retrain the head with this build");
  if (fmt->second != kFormat)
    throw FormatError(where + ": metadata '" + kFormatKey + "' is '" + fmt->second + "', this build reads " + kFormat);
}

}  // namespace

HeadSet HeadSet::joint(Head head) {
  HeadSet s;
  s.heads_.emplace("", std::move(head));
  return s;
}

HeadSet HeadSet::per_task(std::map<std::string, Head> heads) {
  if (heads.empty()) throw ShapeError("per-task head set: no tasks");
  const Head& first = heads.begin()->second;
  for (const auto& [task, h] : heads) {
    if (task.empty() || task.find('/') != std::string::npos)
      throw ShapeError("per-task head set: '" + task + "' is not a task name");
    const HeadSpec& a = h.spec();
    const HeadSpec& b = first.spec();
    if (a.type != b.type || a.rank != b.rank || a.k != b.k || h.vocab_size() != first.vocab_size() ||
        h.hidden_size() != first.hidden_size())
      throw ShapeError("per-task head set: the head of task '" + task + "' differs in kind or shape");
  }
  HeadSet s;
  s.per_task_ = true;
  s.heads_ = std::move(heads);
  return s;
}

std::map<std::string, std::string> HeadSet::read_metadata(const std::filesystem::path& file) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(file);
  check_format(f.metadata(), file.string());
  return f.metadata();
}

HeadSet HeadSet::load(const std::filesystem::path& file, torch::Device device) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(file);
  const std::string where = file.string();
  const auto& meta = f.metadata();
  check_format(meta, where);
  HeadSpec spec;
  spec.name = meta_str(meta, "name", where);
  spec.type = meta_str(meta, "type", where);
  spec.rank = meta_int(meta, "rank", where);
  spec.k = meta_int(meta, "k", where);
  spec.init = meta_str(meta, "init", where);
  try {
    validate(spec, where + ": metadata");
  } catch (const ConfigError& e) {
    throw FormatError(e.what());
  }
  const int64_t vocab = meta_int(meta, "vocab_size", where);
  const int64_t hidden = meta_int(meta, "hidden_size", where);
  const Variant& variant = variant_of(spec.type, where);
  if (vocab == 0 || variant.uses_hidden() != (hidden > 0))
    throw FormatError(where + ": metadata vocab_size/hidden_size do not fit a " + spec.type + " head");
  std::vector<std::string> tasks{""};
  auto t = meta.find("tasks");
  if (t != meta.end()) {
    const nlohmann::json j = nlohmann::json::parse(t->second, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty())
      throw FormatError(where + ": metadata 'tasks' is not a non-empty JSON list");
    tasks.clear();
    for (const auto& name : j) {
      if (!name.is_string() || name.get<std::string>().empty())
        throw FormatError(where + ": metadata 'tasks' holds a non-name");
      tasks.push_back(name.get<std::string>());
    }
  }
  std::set<std::string> expected_names;
  std::map<std::string, Head> heads;
  for (const auto& task : tasks) {
    const std::string prefix = task.empty() ? "" : task + "/";
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const ParamShape& p : variant.shapes(spec, vocab, hidden)) {
      const std::string name = prefix + p.name;
      expected_names.insert(name);
      if (!f.contains(name)) throw FormatError(where + ": tensor '" + name + "' is missing");
      if (f.info(name).dtype != "F32")
        throw FormatError(where + ": tensor '" + name + "' has dtype " + f.info(name).dtype + ", expected F32");
      params.emplace_back(p.name, f.tensor(name));
    }
    heads.emplace(task, Head::from_params(spec, vocab, hidden, std::move(params), where, device));
  }
  for (const auto& info : f.tensors()) {
    if (!expected_names.count(info.name)) throw FormatError(where + ": unexpected tensor '" + info.name + "'");
  }
  HeadSet s = t != meta.end() ? per_task(std::move(heads)) : joint(std::move(heads.at("")));
  s.metadata_ = meta;
  s.source_ = where;
  return s;
}

void HeadSet::save(const std::filesystem::path& file, const std::map<std::string, std::string>& extra) const {
  const Head& first = heads_.begin()->second;
  const HeadSpec& spec = first.spec();
  std::map<std::string, std::string> meta = extra;
  meta[kFormatKey] = kFormat;
  meta["name"] = spec.name;
  meta["type"] = spec.type;
  meta["rank"] = std::to_string(spec.rank);
  meta["k"] = std::to_string(spec.k);
  meta["init"] = spec.init;
  meta["vocab_size"] = std::to_string(first.vocab_size());
  meta["hidden_size"] = std::to_string(first.hidden_size());
  meta.erase("tasks");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  nlohmann::json task_list = nlohmann::json::array();
  for (const auto& [task, h] : heads_) {
    if (per_task_) task_list.push_back(task);
    for (const auto& [name, t] : h.named_parameters())
      tensors.emplace_back((per_task_ ? task + "/" : "") + name, t.detach().to(torch::kCPU, torch::kFloat32));
  }
  if (per_task_) meta["tasks"] = task_list.dump();
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
  io::write_safetensors(file, tensors, meta);
}

const Head& HeadSet::for_task(const std::string& task) const {
  if (!per_task_) return heads_.begin()->second;
  auto it = heads_.find(task);
  if (it == heads_.end())
    throw ConfigError(source_ + ": per-task head '" + spec().name + "' has no head for task '" + task + "'");
  return it->second;
}

std::vector<std::string> HeadSet::tasks() const {
  std::vector<std::string> out;
  if (per_task_)
    for (const auto& [task, h] : heads_) out.push_back(task);
  return out;
}

const HeadSpec& HeadSet::spec() const { return heads_.begin()->second.spec(); }

}  // namespace sf::heads
