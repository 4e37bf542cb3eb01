#include "core/config.hpp"

#include <fstream>
#include <sstream>

#include "core/files.hpp"

namespace sf {
namespace {

// A mapping key as text: ConfigError when it is a list or a mapping (`? [a, b]: 1`).
std::string key_text(const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar()) throw ConfigError(where + ": a key must be plain text, not " + YAML::Dump(key));
  return key.Scalar();
}

}  // namespace

ConfigNode::ConfigNode(YAML::Node node, std::string source, std::string path)
    : node_(std::move(node)),
      source_(std::move(source)),
      path_(std::move(path)),
      used_(std::make_shared<std::set<std::string>>()),
      children_(std::make_shared<std::vector<ConfigNode>>()) {}

ConfigNode ConfigNode::load_file(const std::filesystem::path& file) {
  return parse(read_text_file(file, "config file"), file.string());
}

ConfigNode ConfigNode::parse(const std::string& text, const std::string& source,
                             const std::vector<std::string>& overrides) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!doc.IsMap()) throw ConfigError(source + ": top level must be a mapping");
  for (const auto& o : overrides) apply_override(doc, o);
  return ConfigNode(doc, source);
}

std::string ConfigNode::where(const std::string& key) const {
  return source_ + ": " + (path_.empty() ? key : path_ + "." + key);
}

YAML::Node ConfigNode::lookup(const std::string& key) const {
  if (!node_.IsMap()) throw ConfigError(source_ + ": " + (path_.empty() ? "<root>" : path_) + ": expected a mapping");
  return node_[key];
}

void ConfigNode::mark(const std::string& key) const { used_->insert(key); }

bool ConfigNode::has(const std::string& key) const {
  if (!node_.IsMap()) return false;
  return static_cast<bool>(node_[key]);
}

ConfigNode ConfigNode::child(const std::string& key) const {
  YAML::Node n = lookup(key);
  if (!n) throw ConfigError(where(key) + ": required section is missing");
  if (!n.IsMap()) throw ConfigError(where(key) + ": expected a mapping");
  mark(key);
  ConfigNode c(n, source_, path_.empty() ? key : path_ + "." + key);
  children_->push_back(c);
  return c;
}

std::vector<ConfigNode> ConfigNode::sequence(const std::string& key) const {
  YAML::Node n = lookup(key);
  if (!n) throw ConfigError(where(key) + ": required list is missing");
  if (!n.IsSequence()) throw ConfigError(where(key) + ": expected a list");
  mark(key);
  std::vector<ConfigNode> out;
  for (size_t i = 0; i < n.size(); ++i) {
    ConfigNode c(n[i], source_, (path_.empty() ? key : path_ + "." + key) + "[" + std::to_string(i) + "]");
    children_->push_back(c);
    out.push_back(c);
  }
  return out;
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) out.push_back(key_text(kv.first, where("")));
  return out;
}

void ConfigNode::finish() const {
  if (node_.IsMap()) {
    for (const auto& kv : node_) {
      const auto k = key_text(kv.first, where(""));
      if (!used_->count(k)) throw ConfigError(where(k) + ": unknown key");
    }
  }
  for (const auto& c : *children_) {
    if (c.node_.IsMap()) c.finish();
  }
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + assignment + ": expected key.path=value");
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + assignment + ": value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw ConfigError("--set " + assignment + ": empty key segment");
    parts.push_back(p);
  }
  // yaml-cpp nodes are handles: walk with copies, never reassign a handle (that would alias).
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (next && !next.IsMap()) throw ConfigError("--set " + assignment + ": '" + parts[i] + "' is not a mapping");
    if (!next) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

}  // namespace sf
