#pragma once
// A job file (jobs/*.yaml) describes a whole study; every stage command (extract, train-head,
// evaluate, reduce, run) reads the same file: the common keys below plus its own section.
//
//   run_dir: runs/tiny          # every output of the study goes here
//   seed: 1234
//   device: cpu                 # cpu | cuda (each rank uses cuda:<local rank>)
//   threads: 0                  # intra-op threads per rank; 0 = cores / ranks-on-node
//   data_root: ../shared/data   # relative dataset paths in task files resolve against this
//   models:
//     base:    {path: DIR, template: plain,  dtype: float32}
//     aligned: {path: DIR, template: chatml, dtype: float32}
//   tasks: [advbench, gsm8k]    # names of configs/tasks/<name>.yaml, or paths to task files
//   extract: {...}  heads: {...}  evaluate: {...}  judges: {...}  reduce: {...}
//
// Relative paths resolve against the current working directory (run from the repository root).
// Unknown top-level keys are errors.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace sf {

struct ModelRef {
  std::string role;                         // key under `models` (base, aligned, compromised, ...)
  std::filesystem::path path;               // HF-layout model folder
  std::optional<ConfigNode> chat_template;  // the `template` value: a preset name or a mapping
  std::string template_name;                // preset name, or "custom" for a mapping
  std::string dtype = "float32";            // compute dtype: float32 | bfloat16 | float16
};

class Job {
 public:
  // Loads the file, applies `--set key=value` overrides, checks the common keys.
  static Job load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
  static Job parse(const std::string& yaml_text, const std::string& source,
                   const std::vector<std::string>& overrides = {});

  const std::filesystem::path& run_dir() const { return run_dir_; }
  uint64_t seed() const { return seed_; }
  const std::string& device() const { return device_; }
  int threads() const { return threads_; }
  const std::filesystem::path& data_root() const { return data_root_; }
  const std::vector<std::string>& tasks() const { return tasks_; }
  const ModelRef& model(const std::string& role) const;  // ConfigError naming the role if absent
  bool has_model(const std::string& role) const { return models_.count(role) > 0; }

  bool has_section(const std::string& name) const;
  // A stage's own section; call finish() on it after reading to reject unknown keys.
  ConfigNode section(const std::string& name) const;
  // The resolved document (after overrides), as YAML text: stored in every output file.
  std::string resolved_yaml() const;
  const std::string& source() const { return source_; }

 private:
  Job(ConfigNode root, std::string source);
  ConfigNode root_;
  std::string source_;
  std::filesystem::path run_dir_;
  uint64_t seed_ = 0;
  std::string device_ = "cpu";
  int threads_ = 0;
  std::filesystem::path data_root_ = "../shared/data";
  std::vector<std::string> tasks_;
  std::map<std::string, ModelRef> models_;
};

}  // namespace sf
