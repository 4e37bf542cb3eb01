#include "heads/stage.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "dist/comm.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/base_model.hpp"
#include "heads/head.hpp"
#include "heads/train.hpp"
#include "model/config.hpp"

namespace sf::heads {
namespace {

namespace fs = std::filesystem;

struct HeadJob {
  HeadSpec spec;
  TrainOptions opts;
};

struct HeadsSection {
  fs::path dataset;
  double val_fraction = 0;
  std::vector<HeadJob> heads;
};

HeadsSection read_section(const Job& job) {
  const ConfigNode s = job.section("heads");
  HeadsSection out;
  out.dataset = s.get<std::string>("dataset", (job.run_dir() / "extract" / "logits.h5").string());
  TrainOptions common;
  common.lr = s.get<double>("lr");
  common.epochs = s.get<int64_t>("epochs");
  common.batch_tokens = s.get<int64_t>("batch_tokens");
  common.seed = s.get<uint64_t>("seed", job.seed());
  out.val_fraction = s.get<double>("val_fraction");
  if (!(out.val_fraction > 0 && out.val_fraction < 1))
    throw ConfigError(s.where("val_fraction") + ": must be in (0, 1)");
  if (common.lr <= 0) throw ConfigError(s.where("lr") + ": must be positive");
  if (common.epochs < 0) throw ConfigError(s.where("epochs") + ": must be >= 0");
  if (common.batch_tokens <= 0) throw ConfigError(s.where("batch_tokens") + ": must be positive");
  const auto variants = s.sequence("variants");
  if (variants.empty()) throw ConfigError(s.where("variants") + ": list at least one head");
  for (size_t i = 0; i < variants.size(); ++i) {
    const ConfigNode& v = variants[i];
    HeadJob h{{}, common};
    h.spec.name = v.get<std::string>("name");
    h.spec.variant = v.get<std::string>("type");
    h.spec.rank = v.get<int64_t>("rank", 0);
    h.spec.k = v.get<int64_t>("k", 0);
    h.opts.lr = v.get<double>("lr", common.lr);
    h.opts.epochs = v.get<int64_t>("epochs", common.epochs);
    if (h.opts.lr <= 0 || h.opts.epochs < 0) throw ConfigError(v.where("lr") + ": lr must be positive, epochs >= 0");
    const std::string where = s.where("variants") + "[" + std::to_string(i) + "]";
    if (h.spec.name.empty() || h.spec.name.find_first_of("/\\") != std::string::npos || h.spec.name[0] == '.') {
      throw ConfigError(where + ".name: '" + h.spec.name + "' is not a plain file name");
    }
    for (const HeadJob& other : out.heads) {
      if (other.spec.name == h.spec.name) throw ConfigError(where + ".name: '" + h.spec.name + "' is used twice");
    }
    validate(h.spec, where);
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

}  // namespace

void run_train_heads(const Job& job, dist::Comm& comm) {
  const HeadsSection section = read_section(job);
  torch::Device device = torch::kCPU;
  if (job.device() == "cuda") {
    if (!torch::cuda::is_available()) throw ConfigError("device: cuda, but no CUDA device is available");
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank()));
  }
  torch::set_num_threads(comm.threads_per_rank(job.threads()));

  const fs::path base_dir = job.model("base").path;
  const auto ds = extract::LogitDataset::open(section.dataset);
  // Identity of the dataset for the resume check: its attributes (config, models, hashes, git SHA).
  const std::string dataset_hash = sha256_hex(ds.attributes().dump());
  const std::string base_hash = model_fingerprint(base_dir);
  const std::string tokenizer_hash = tokenizer_fingerprint(base_dir);
  const fs::path out_dir = job.run_dir() / "heads";

  // Heads still to train (decided on rank 0, so every rank agrees).
  std::vector<HeadJob> todo;
  for (const HeadJob& h : section.heads) {
    const fs::path file = out_dir / (h.spec.name + ".safetensors");
    std::string verdict = "train";
    if (comm.is_root() && fs::exists(file)) {
      const auto done = Head::load(file);
      auto it = done.metadata().find("config");
      if (it == done.metadata().end() ||
          nlohmann::json::parse(it->second) != training_config(h, section, dataset_hash)) {
        throw ConfigError(file.string() + ": exists with another training config; delete it to retrain head '" +
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
    w = load_lm_head_weight(base_dir);
    vocab_size = w.size(0);
    if (w.size(1) != ds.hidden_size()) {
      throw ShapeError(section.dataset.string() + ": hidden size " + std::to_string(ds.hidden_size()) + ", but " +
                       base_dir.string() + " has " + std::to_string(w.size(1)));
    }
    w = w.to(device);
  } else {
    vocab_size = model::ModelConfig::from_file(base_dir / "config.json").vocab_size;
  }
  const SplitData data =
      load_split(ds, &comm, section.val_fraction, todo.front().opts.seed, need_hidden, need_base_topk, vocab_size);
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
      if (!metrics) throw IoError(metrics_file.string() + ": cannot write");
    }
    const Head head = Head::init(h.spec, vocab_size, need_hidden ? w.size(1) : 0, h.opts.seed, device);
    nlohmann::json last;
    train_head(head, data, w, h.opts, &comm, [&](const EpochMetrics& m) {
      last = m.to_json();
      spdlog::info(
          "head '{}' epoch {}: train KL {:.5f}, val KL {:.5f}, val top-1 {:.4f} (base: val KL {:.5f}, top-1 {:.4f})",
          h.spec.name, m.epoch, m.train_kl, m.val.kl, m.val.top1, m.base_val.kl, m.base_val.top1);
      if (comm.is_root()) {
        metrics << last.dump() << "\n";
        metrics.flush();
        if (!metrics) throw IoError(metrics_file.string() + ": cannot write");
      }
    });
    if (comm.is_root()) {
      head.save(file, {{"base_model", base_dir.string()},
                       {"base_model_hash", base_hash},
                       {"tokenizer_hash", tokenizer_hash},
                       {"config", training_config(h, section, dataset_hash).dump()},
                       {"job", job.resolved_yaml()},
                       {"final_metrics", last.dump()},
                       {"tool_version", std::string(build::kVersion) + " (" + build::kGitSha + ")"}});
      spdlog::info("head '{}' written to {}", h.spec.name, file.string());
    }
    comm.barrier();
  }
}

}  // namespace sf::heads
