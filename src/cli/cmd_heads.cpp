// `superficial train-head JOB.yaml [--set key=value ...]`: trains every head listed in the job's
// `heads:` section on the logit dataset (run under mpirun for data parallelism), and
// `superficial export-merged --base DIR --head H --out DIR2`: folds a hidden head into lm_head.
//
//   heads:
//     dataset: runs/x/extract/logits.h5   # optional; default <run_dir>/extract/logits.h5
//     lr: 1.0e-3                          # Adam learning rate
//     epochs: 3
//     batch_tokens: 1024                  # positions per optimiser step, over all ranks
//     val_fraction: 0.1                   # share of EXAMPLES held out for validation
//     seed: 1234                          # optional; default the job's seed
//     variants:                           # each may override lr and epochs
//       - {name: hidden, type: hidden}
//       - {name: lowrank, type: hidden, rank: 16}
//       - {name: bb, type: bb, k: 100, rank: 64}
//       - {name: bias, type: bias, lr: 1.0e-2}
//
// Outputs: <run_dir>/heads/<name>.safetensors and <run_dir>/heads/<name>/metrics.jsonl (one JSON
// line per epoch, epoch 0 = before training). A head whose .safetensors exists with the same
// training config is skipped, so a requeued job continues with the next head.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/job.hpp"
#include "dist/comm.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/base_model.hpp"
#include "heads/export.hpp"
#include "heads/head.hpp"
#include "heads/train.hpp"
#include "model/config.hpp"

namespace {

namespace fs = std::filesystem;
using sf::heads::HeadSpec;
using sf::heads::TrainOptions;

struct HeadJob {
  HeadSpec spec;
  TrainOptions opts;
};

struct HeadsSection {
  fs::path dataset;
  double val_fraction = 0;
  std::vector<HeadJob> heads;
};

HeadsSection read_section(const sf::Job& job) {
  const sf::ConfigNode s = job.section("heads");
  HeadsSection out;
  out.dataset = s.get<std::string>("dataset", (job.run_dir() / "extract" / "logits.h5").string());
  TrainOptions common;
  common.lr = s.get<double>("lr");
  common.epochs = s.get<int64_t>("epochs");
  common.batch_tokens = s.get<int64_t>("batch_tokens");
  common.seed = s.get<uint64_t>("seed", job.seed());
  out.val_fraction = s.get<double>("val_fraction");
  if (!(out.val_fraction > 0 && out.val_fraction < 1))
    throw sf::ConfigError(s.where("val_fraction") + ": must be in (0, 1)");
  if (common.lr <= 0) throw sf::ConfigError(s.where("lr") + ": must be positive");
  if (common.epochs < 0) throw sf::ConfigError(s.where("epochs") + ": must be >= 0");
  if (common.batch_tokens <= 0) throw sf::ConfigError(s.where("batch_tokens") + ": must be positive");
  const auto variants = s.sequence("variants");
  if (variants.empty()) throw sf::ConfigError(s.where("variants") + ": list at least one head");
  for (size_t i = 0; i < variants.size(); ++i) {
    const sf::ConfigNode& v = variants[i];
    HeadJob h{{}, common};
    h.spec.name = v.get<std::string>("name");
    h.spec.variant = v.get<std::string>("type");
    h.spec.rank = v.get<int64_t>("rank", 0);
    h.spec.k = v.get<int64_t>("k", 0);
    h.opts.lr = v.get<double>("lr", common.lr);
    h.opts.epochs = v.get<int64_t>("epochs", common.epochs);
    if (h.opts.lr <= 0 || h.opts.epochs < 0)
      throw sf::ConfigError(v.where("lr") + ": lr must be positive, epochs >= 0");
    const std::string where = s.where("variants") + "[" + std::to_string(i) + "]";
    if (h.spec.name.empty() || h.spec.name.find_first_of("/\\") != std::string::npos || h.spec.name[0] == '.') {
      throw sf::ConfigError(where + ".name: '" + h.spec.name + "' is not a plain file name");
    }
    for (const HeadJob& other : out.heads) {
      if (other.spec.name == h.spec.name) throw sf::ConfigError(where + ".name: '" + h.spec.name + "' is used twice");
    }
    sf::heads::validate(h.spec, where);
    out.heads.push_back(h);
  }
  s.finish();
  return out;
}

// The training configuration recorded in a head and compared on resume.
nlohmann::json training_config(const HeadJob& h, const HeadsSection& s, const std::string& dataset_hash) {
  return {{"name", h.spec.name},
          {"type", h.spec.variant},
          {"rank", h.spec.rank},
          {"k", h.spec.k},
          {"lr", h.opts.lr},
          {"epochs", h.opts.epochs},
          {"batch_tokens", h.opts.batch_tokens},
          {"seed", h.opts.seed},
          {"val_fraction", s.val_fraction},
          {"dataset", s.dataset.string()},
          {"dataset_sha256_header", dataset_hash}};
}

void train_heads(const std::string& job_file, const std::vector<std::string>& overrides) {
  const sf::Job job = sf::Job::load(job_file, overrides);
  const HeadsSection section = read_section(job);
  sf::dist::Comm& comm = sf::dist::Comm::world();
  torch::Device device = torch::kCPU;
  if (job.device() == "cuda") {
    if (!torch::cuda::is_available())
      throw sf::ConfigError(job_file + ": device: cuda, but no CUDA device is available");
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank()));
  }
  const int threads =
      job.threads() > 0
          ? job.threads()
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, comm.local_size()));
  torch::set_num_threads(threads);

  const fs::path base_dir = job.model("base").path;
  const auto ds = sf::extract::LogitDataset::open(section.dataset);
  // Identity of the dataset for the resume check: its attributes (config, models, hashes, git SHA).
  const std::string dataset_hash = sf::sha256_hex(ds.attributes().dump());
  const std::string base_hash = sf::heads::model_fingerprint(base_dir);
  const std::string tokenizer_hash = sf::heads::tokenizer_fingerprint(base_dir);
  const fs::path out_dir = job.run_dir() / "heads";

  // Heads still to train (decided on rank 0, so every rank agrees).
  std::vector<HeadJob> todo;
  for (const HeadJob& h : section.heads) {
    const fs::path file = out_dir / (h.spec.name + ".safetensors");
    std::string verdict = "train";
    if (comm.is_root() && fs::exists(file)) {
      const auto done = sf::heads::Head::load(file);
      auto it = done.metadata().find("config");
      if (it == done.metadata().end() ||
          nlohmann::json::parse(it->second) != training_config(h, section, dataset_hash)) {
        throw sf::ConfigError(file.string() + ": exists with another training config; delete it to retrain head '" +
                              h.spec.name + "'");
      }
      verdict = "done";
    }
    if (comm.broadcast(verdict) == "done") {
      spdlog::info("head '{}': {} is complete, skipped", h.spec.name, file.string());
    } else {
      todo.push_back(h);
    }
  }
  if (todo.empty()) return;

  bool need_hidden = false;
  bool need_base_topk = false;
  for (const HeadJob& h : todo) (h.spec.variant == "bb" ? need_base_topk : need_hidden) = true;
  torch::Tensor w;  // [V,H] base lm_head
  int64_t vocab_size = 0;
  if (need_hidden) {
    w = sf::heads::load_lm_head_weight(base_dir);
    vocab_size = w.size(0);
    if (w.size(1) != ds.hidden_size()) {
      throw sf::ShapeError(section.dataset.string() + ": hidden size " + std::to_string(ds.hidden_size()) + ", but " +
                           base_dir.string() + " has " + std::to_string(w.size(1)));
    }
    w = w.to(device);
  } else {
    vocab_size = sf::model::ModelConfig::from_file(base_dir / "config.json").vocab_size;
  }
  const sf::heads::SplitData data = sf::heads::load_split(ds, &comm, section.val_fraction, todo.front().opts.seed,
                                                          need_hidden, need_base_topk, vocab_size);
  spdlog::info("logit dataset {}: {} train / {} validation examples, {} / {} positions", section.dataset.string(),
               data.train_examples, data.val_examples, data.train.total, data.val.total);

  for (HeadJob h : todo) {
    h.opts.device = device;
    const fs::path file = out_dir / (h.spec.name + ".safetensors");
    const fs::path metrics_file = out_dir / h.spec.name / "metrics.jsonl";
    std::ofstream metrics;
    if (comm.is_root()) {
      fs::create_directories(metrics_file.parent_path());
      metrics.open(metrics_file, std::ios::trunc);
      if (!metrics) throw sf::IoError(metrics_file.string() + ": cannot write");
    }
    const sf::heads::Head head =
        sf::heads::Head::init(h.spec, vocab_size, need_hidden ? w.size(1) : 0, h.opts.seed, device);
    nlohmann::json last;
    sf::heads::train_head(head, data, w, h.opts, &comm, [&](const sf::heads::EpochMetrics& m) {
      last = m.to_json();
      spdlog::info(
          "head '{}' epoch {}: train KL {:.5f}, val KL {:.5f}, val top-1 {:.4f} (base: val KL {:.5f}, top-1 {:.4f})",
          h.spec.name, m.epoch, m.train_kl, m.val.kl, m.val.top1, m.base_val.kl, m.base_val.top1);
      if (comm.is_root()) {
        metrics << last.dump() << "\n";
        metrics.flush();
        if (!metrics) throw sf::IoError(metrics_file.string() + ": cannot write");
      }
    });
    if (comm.is_root()) {
      head.save(file, {{"base_model", base_dir.string()},
                       {"base_model_hash", base_hash},
                       {"tokenizer_hash", tokenizer_hash},
                       {"config", training_config(h, section, dataset_hash).dump()},
                       {"job", job.resolved_yaml()},
                       {"final_metrics", last.dump()},
                       {"tool_version", std::string(sf::build::kVersion) + " (" + sf::build::kGitSha + ")"}});
      spdlog::info("head '{}' written to {}", h.spec.name, file.string());
    }
    comm.barrier();
  }
}

void setup_heads(CLI::App& app) {
  auto* train = app.add_subcommand("train-head", "Train the superficial heads listed in a job's heads: section");
  auto job = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  train->add_option("job", *job, "Job file (YAML)")->required();
  train->add_option("--set", *overrides, "Override a job key: key.path=value (repeatable)");
  train->callback([job, overrides] { train_heads(*job, *overrides); });

  auto* merge = app.add_subcommand("export-merged", "Write a model folder whose lm_head includes a hidden head");
  auto base = std::make_shared<std::string>();
  auto head = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  merge->add_option("--base", *base, "Base model folder (Hugging Face layout)")->required();
  merge->add_option("--head", *head, "Head file (.safetensors) trained on that base")->required();
  merge->add_option("--out", *out, "Output folder (must not exist or be empty)")->required();
  merge->callback([base, head, out] {
    sf::heads::export_merged(*base, *head, *out);
    spdlog::info("merged model written to {}", *out);
  });
}

SF_COMMAND(setup_heads);

}  // namespace
