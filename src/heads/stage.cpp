#include "heads/stage.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "dist/comm.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/base_model.hpp"
#include "heads/head_set.hpp"
#include "heads/train.hpp"
#include "study/model_set.hpp"

namespace sf::heads {
namespace {

namespace fs = std::filesystem;

// The training configuration recorded in a head and compared on resume.
nlohmann::json training_config(const study::HeadDef& h, const fs::path& dataset, const std::string& dataset_hash) {
  const study::HeadTraining& t = h.training;
  return {{"name", h.spec.name},
          {"type", h.spec.type},
          {"rank", h.spec.rank},
          {"k", h.spec.k},
          {"init", h.spec.init},
          {"lr", t.lr},
          {"epochs", t.epochs},
          {"batch_tokens", t.batch_tokens},
          {"seed", t.seed},
          {"val_fraction", t.val_fraction},
          {"per_task", t.per_task},
          {"max_memory_bytes", t.max_memory_bytes},
          {"pair", {{"base", h.from->base}, {"aligned", h.from->aligned}}},
          {"dataset", dataset.string()},
          {"dataset_sha256_header", dataset_hash}};
}

// Whether the head's file is already complete for this config (decided on rank 0).
bool already_trained(const study::HeadDef& h, const nlohmann::json& config, const dist::Comm& comm) {
  std::string verdict = "train";
  if (comm.is_root() && fs::exists(h.file)) {
    const auto meta = HeadSet::read_metadata(h.file);
    auto it = meta.find("config");
    if (it == meta.end() || nlohmann::json::parse(it->second, nullptr, false) != config)
      throw ConfigError(h.file.string() + ": exists with another training config; delete it to retrain head '" +
                        h.spec.name + "'");
    verdict = "done";
  }
  return comm.broadcast(verdict) == "done";
}

void train_one(const Job& job, const study::Study& study, const study::HeadDef& h, dist::Comm& comm,
               torch::Device device) {
  const fs::path dataset = study.logits_file(job, *h.from);
  const auto ds = extract::LogitDataset::open(dataset);
  // Identity of the dataset for the resume check: its attributes (config, models, hashes, git SHA).
  const std::string dataset_hash = sha256_hex(ds.attributes().dump());
  const nlohmann::json config = training_config(h, dataset, dataset_hash);
  if (already_trained(h, config, comm)) {
    spdlog::info("head '{}': {} is complete, skipped", h.spec.name, h.file.string());
    return;
  }
  const fs::path base_dir = job.model(h.from->base).path;
  const torch::Tensor w = load_lm_head_weight(base_dir).to(device);  // [V,H]
  if (w.size(1) != ds.hidden_size())
    throw ShapeError(dataset.string() + ": hidden size " + std::to_string(ds.hidden_size()) + ", but " +
                     base_dir.string() + " has " + std::to_string(w.size(1)));
  const int64_t vocab = w.size(0), hidden = w.size(1);
  const std::vector<bool> is_val = validation_examples(ds.num_examples(), h.training.val_fraction, h.training.seed);
  std::vector<std::string> tasks{""};
  if (h.training.per_task) {
    std::set<std::string> seen;
    tasks.clear();
    for (int64_t r = 0; r < ds.num_examples(); ++r)
      if (seen.insert(ds.example_task(r)).second) tasks.push_back(ds.example_task(r));
  }
  TrainOptions opts;
  opts.lr = h.training.lr;
  opts.epochs = h.training.epochs;
  opts.batch_tokens = h.training.batch_tokens;
  opts.seed = h.training.seed;
  opts.max_memory_bytes = h.training.max_memory_bytes;
  opts.device = device;

  const fs::path metrics_file = h.file.parent_path() / h.spec.name / "metrics.jsonl";
  std::ofstream metrics;
  if (comm.is_root()) {
    fs::create_directories(metrics_file.parent_path());
    metrics.open(metrics_file, std::ios::trunc);
    if (!metrics) throw IoError(metrics_file.string() + ": cannot write");
  }
  std::map<std::string, Head> trained;
  nlohmann::json last = nlohmann::json::object(), validation = nlohmann::json::array();
  for (int64_t r = 0; r < ds.num_examples(); ++r)
    if (is_val[static_cast<size_t>(r)]) validation.push_back(r);
  for (const std::string& task : tasks) {
    std::vector<int64_t> train_rows, val_rows;
    for (int64_t r = 0; r < ds.num_examples(); ++r) {
      if (!task.empty() && ds.example_task(r) != task) continue;
      (is_val[static_cast<size_t>(r)] ? val_rows : train_rows).push_back(r);
    }
    const PositionSet train(ds, train_rows, vocab), val(ds, val_rows, vocab);
    const std::string label = task.empty() ? h.spec.name : h.spec.name + "@" + task;
    spdlog::info("head '{}': {} train / {} validation examples, {} / {} positions", label, train.num_examples(),
                 val.num_examples(), train.size(), val.size());
    const Head head = Head::init(h.spec, vocab, hidden, h.training.seed, device);
    train_head(head, train, val, w, opts, &comm, [&](const EpochMetrics& m) {
      nlohmann::json line = m.to_json();
      if (!task.empty()) line["task"] = task;
      last[task.empty() ? "all" : task] = line;
      spdlog::info(
          "head '{}' epoch {}: train KL {:.5f}, val KL {:.5f}, val top-1 {:.4f} (base: val KL {:.5f}, top-1 "
          "{:.4f}){}",
          label, m.epoch, m.train_kl, m.val.kl, m.val.top1, m.base_val.kl, m.base_val.top1,
          h.spec.k > 0 ? fmt::format(", top-{} coverage {:.3f}", h.spec.k, m.val.coverage) : "");
      if (comm.is_root()) {
        metrics << line.dump() << "\n";
        metrics.flush();
        if (!metrics) throw IoError(metrics_file.string() + ": cannot write");
      }
    });
    trained.emplace(task, head);
  }
  if (comm.is_root()) {
    const HeadSet set =
        h.training.per_task ? HeadSet::per_task(std::move(trained)) : HeadSet::joint(std::move(trained.at("")));
    set.save(h.file, {{"pair_base", h.from->base},
                      {"pair_aligned", h.from->aligned},
                      {"base_model", base_dir.string()},
                      {"base_model_hash", model_fingerprint(base_dir)},
                      {"tokenizer_hash", tokenizer_fingerprint(base_dir)},
                      {"config", config.dump()},
                      {"dataset", dataset.string()},
                      {"validation_examples", validation.dump()},
                      {"job", job.resolved_yaml()},
                      {"final_metrics", last.dump()},
                      {"tool_version", std::string(build::kVersion) + " (" + build::kGitSha + ")"}});
    spdlog::info("head '{}' written to {}", h.spec.name, h.file.string());
  }
  comm.barrier();
}

}  // namespace

void run_train_heads(const Job& job, const study::Study& study, dist::Comm& comm) {
  const torch::Device device = study::rank_device(job, comm);
  torch::set_num_threads(comm.threads_per_rank(job.threads()));
  for (const study::HeadDef& h : study.heads())
    if (h.trained_here()) train_one(job, study, h, comm, device);
}

}  // namespace sf::heads
