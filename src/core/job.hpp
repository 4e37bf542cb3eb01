#pragma once
// A job file (jobs/*.yaml) describes a whole study; every stage command (extract, train-head,
// evaluate, judge, reduce, run) reads the same file. Format v2:
//
//   run_dir: runs/x            # every output of the study goes here
//   seed: 1234
//   device: cpu                # cpu | cuda (each rank uses cuda:<local rank>)
//   threads: 0                 # intra-op threads per rank; 0 = cores / ranks-on-node
//   data_root: ../shared/data  # relative dataset paths in task files resolve against this
//   models:                    # any number of named models; names are the labels of every output
//     llama2-7b:      {path: DIR, template: plain, dtype: bfloat16}
//     llama2-7b-chat: {path: DIR, template: llama2-chat, dtype: bfloat16}
//   tasks: [gsm8k, advbench]   # names of configs/tasks/<name>.yaml, or paths to task files
//   heads: {...}  systems: {...}  comparisons: [...]   (src/study/study.hpp)
//   extract: {...}  evaluate: {...}  judges: {...}  reduce: {...}   (their stages)
//   parallel: {tensor: 1}      # ranks per tensor-parallel group (dist/layout.hpp): every model is
//                              # split over T consecutive ranks; extract, evaluate and judge share
//                              # their units among the groups
//
// A model path is a Hugging Face folder (config.json, safetensors, tokenizer.json). Relative paths
// resolve against the current working directory (run from the repository root). Unknown keys are
// errors; a v1 job (roles base/aligned, evaluate.systems) is refused with what to change.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace sf {

struct ModelRef {
  std::string name;                         // key under `models`
  std::filesystem::path path;               // HF-layout model folder
  std::optional<ConfigNode> chat_template;  // the `template` value when it is a mapping
  std::string template_name;                // preset name, or "custom" for a mapping
  std::string dtype = "float32";            // compute dtype: float32 | bfloat16 | float16
};

// Names of models, systems, heads and comparisons: used in file names and tables, so letters,
// digits and . _ - + only (ConfigError naming `where` otherwise).
void check_name(const std::string& name, const std::string& where);

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
  int tensor_parallel() const { return tensor_parallel_; }  // parallel.tensor, default 1
  const std::filesystem::path& data_root() const { return data_root_; }
  const std::vector<std::string>& tasks() const { return tasks_; }
  const ModelRef& model(const std::string& name) const;  // ConfigError naming the model if absent
  bool has_model(const std::string& name) const { return models_.count(name) > 0; }
  const std::map<std::string, ModelRef>& models() const { return models_; }

  bool has_section(const std::string& name) const;
  // A section (stage settings, heads, systems, comparisons): call finish() on it after reading to
  // reject unknown keys.
  ConfigNode section(const std::string& name) const;
  // A section that is a list (comparisons): its elements; empty when absent.
  std::vector<ConfigNode> list(const std::string& name) const;
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
  int tensor_parallel_ = 1;
  std::filesystem::path data_root_ = "../shared/data";
  std::vector<std::string> tasks_;
  std::map<std::string, ModelRef> models_;
};

}  // namespace sf
