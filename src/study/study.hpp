#pragma once
// The study a job defines, resolved from its `heads:`, `systems:` and `comparisons:` sections:
// which pairs are extracted, which heads are trained on which pair, what each named system is, and
// which comparisons reduce reports. Everything here is data from the job file; no code path is
// chosen from a model's name.
//
//   heads:
//     lr: 1.0e-3                   # Adam learning rate (each head may override lr and epochs)
//     epochs: 8
//     batch_tokens: 512            # positions per optimiser step, over all ranks
//     val_fraction: 0.1            # share of EXAMPLES held out for validation
//     max_memory_mb: 4096          # positions held in memory per rank while training
//     init: zero                   # zero | random (as torch.nn.Linear, the reference's heads)
//     per_task: false              # one head per task instead of one joint head
//     seed: 1234                   # optional; default the job's seed
//     from: {base: llama2-7b, aligned: llama2-7b-chat}   # default pair of the heads below
//     variants:
//       - {name: hidden-7b, type: hidden}
//       - {name: bb-7b, type: bb, k: 100, rank: 64, from: {base: llama2-7b, aligned: llama2-7b-chat}}
//       - {name: prior, file: runs/other/heads/hidden.safetensors}   # trained by another run
//   systems:                       # named systems: a model and what is put on it
//     B13:     {model: llama2-13b}
//     B13+bb7: {model: llama2-13b, head: bb-7b}
//     B13-proxy: {model: llama2-13b, proxy: {expert: llama2-7b-chat, anti_expert: llama2-7b, alpha: 1.0}}
//     B13-icl: {model: llama2-13b, template: {prefix_file: configs/prompts/icl-align.txt, ...}, stop: ["# Query"]}
//   comparisons:                   # what reduce reports: (S − B)/(A − B) of each listed system
//     - {name: transfer-13b, base: B13, aligned: A13, systems: [B13+bb7, B13-proxy, B13-icl]}
//
// Extraction runs once per distinct (base, aligned) pair of the trained heads, into
// <run_dir>/extract/<base>__<aligned>/; heads of one pair share it.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "heads/head.hpp"

namespace sf::study {

struct Pair {
  std::string base;
  std::string aligned;
  std::string id() const { return base + "__" + aligned; }  // the extraction folder's name
  bool operator==(const Pair& o) const { return base == o.base && aligned == o.aligned; }
};

struct HeadTraining {
  double lr = 1e-3;
  int64_t epochs = 1;
  int64_t batch_tokens = 1024;
  double val_fraction = 0.1;
  int64_t max_memory_bytes = int64_t{4096} << 20;
  bool per_task = false;
  uint64_t seed = 0;
};

struct HeadDef {
  heads::HeadSpec spec;        // name, type, rank, k, init (type etc. empty for a file head)
  std::optional<Pair> from;    // trained in this run on this pair's extraction
  std::filesystem::path file;  // where the trained head is (this run's heads/ or `file:`)
  HeadTraining training;       // for heads trained here
  bool trained_here() const { return from.has_value(); }
};

struct Proxy {
  std::string expert;
  std::string anti_expert;
  double alpha = 1.0;
};

struct SystemDef {
  std::string name;
  std::string model;                            // a key of the job's models
  std::string head;                             // a head name, or empty
  std::optional<Proxy> proxy;                   // proxy-tuning: logits = M + α(E − Ā)
  std::optional<ConfigNode> template_override;  // the system's own template (preset name or mapping)
  std::vector<std::string> stop;                // extra stop strings (after the task's)
};

struct Comparison {
  std::string name;
  std::string base;  // system names
  std::string aligned;
  std::vector<std::string> systems;
};

class Study {
 public:
  // Parses and cross-checks the three sections (names exist, a comparison's base and aligned
  // differ, ...). Reads no model file.
  static Study from_job(const Job& job);

  const std::vector<Pair>& pairs() const { return pairs_; }
  const std::vector<HeadDef>& heads() const { return heads_; }
  const HeadDef& head(const std::string& name) const;  // ConfigError if absent
  const std::vector<SystemDef>& systems() const { return systems_; }
  const SystemDef& system(const std::string& name) const;  // ConfigError if absent
  const std::vector<Comparison>& comparisons() const { return comparisons_; }

  // Models a system reads (its model first, then proxy expert and anti-expert).
  std::vector<std::string> models_of(const SystemDef& s) const;
  // One line saying what a system is: "llama2-13b + head bb-7b (bb, from llama2-7b → llama2-7b-chat)".
  std::string describe(const SystemDef& s) const;

  // Checks, before any compute, that every head fits every model it is put on: the same tokenizer
  // (tokenizer.json fingerprint) as the head's source base, and the same hidden size for heads
  // that read hidden states; a proxy's models share the system model's tokenizer. Reads
  // config.json and tokenizer fingerprints (and the metadata of `file:` heads). ConfigError naming
  // both models otherwise.
  void check_compatibility(const Job& job) const;

  std::filesystem::path extract_dir(const Job& job, const Pair& p) const;
  std::filesystem::path logits_file(const Job& job, const Pair& p) const;

 private:
  std::vector<Pair> pairs_;
  std::vector<HeadDef> heads_;
  std::vector<SystemDef> systems_;
  std::vector<Comparison> comparisons_;
};

}  // namespace sf::study
