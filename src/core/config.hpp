#pragma once
// Typed access to YAML configuration with strict key checking.
//
// Every read marks the key as used; `finish()` throws ConfigError naming the first key that was
// never read (an unknown or misspelled key), so typos never become silent defaults. Errors name
// the source file and the dotted key path, e.g. "jobs/tiny.yaml: heads.lr: expected a number".
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace sf {

class ConfigNode {
 public:
  ConfigNode(YAML::Node node, std::string source, std::string path = "");

  // Loads a YAML file; throws IoError / ConfigError naming the file and line.
  static ConfigNode load_file(const std::filesystem::path& file);
  // Parses YAML text whose top level is a mapping, then applies `--set key.path=value` overrides.
  static ConfigNode parse(const std::string& text, const std::string& source,
                          const std::vector<std::string>& overrides = {});

  bool has(const std::string& key) const;
  template <class T>
  T get(const std::string& key) const;
  template <class T>
  T get(const std::string& key, const T& fallback) const;
  template <class T>
  std::optional<T> get_optional(const std::string& key) const;
  ConfigNode child(const std::string& key) const;
  // Elements of a sequence under `key` (each a ConfigNode with its own used-key tracking).
  std::vector<ConfigNode> sequence(const std::string& key) const;
  // Keys of a map node, in file order.
  std::vector<std::string> keys() const;
  // Throws ConfigError if this node (recursively through children handed out) has unread keys.
  void finish() const;

  const YAML::Node& yaml() const { return node_; }
  const std::string& source() const { return source_; }
  std::string where(const std::string& key) const;

 private:
  YAML::Node lookup(const std::string& key) const;
  void mark(const std::string& key) const;

  YAML::Node node_;
  std::string source_;
  std::string path_;
  std::shared_ptr<std::set<std::string>> used_;
  std::shared_ptr<std::vector<ConfigNode>> children_;
};

// Applies `key.sub=value` overrides (from --set) to a YAML document. The value is parsed as YAML,
// so numbers, booleans and lists keep their types. Throws ConfigError on a malformed override.
void apply_override(YAML::Node& root, const std::string& assignment);

template <class T>
T ConfigNode::get(const std::string& key) const {
  YAML::Node n = lookup(key);
  if (!n) throw ConfigError(where(key) + ": required key is missing");
  mark(key);
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(where(key) + ": value '" + YAML::Dump(n) + "' has the wrong type");
  }
}

template <class T>
T ConfigNode::get(const std::string& key, const T& fallback) const {
  auto v = get_optional<T>(key);
  return v ? *v : fallback;
}

template <class T>
std::optional<T> ConfigNode::get_optional(const std::string& key) const {
  YAML::Node n = lookup(key);
  if (!n || n.IsNull()) {
    if (n) mark(key);
    return std::nullopt;
  }
  return get<T>(key);
}

}  // namespace sf
