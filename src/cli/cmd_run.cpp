// `superficial run JOB.yaml [--set key=value ...]`: the whole study in one (MPI) job:
// extract → train-head → evaluate → judge → reduce. A stage whose output is complete is skipped, and the
// stages themselves resume from their finished chunks, so a requeued job continues where it stopped.
//
// Every run folder keeps job.resolved.yaml (the job after --set) and provenance.json (tool version,
// git SHA, seeds, ranks, model and tokenizer fingerprints, start time).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/job.hpp"
#include "dist/comm.hpp"
#include "eval/evaluate.hpp"
#include "eval/progress.hpp"
#include "eval/stop.hpp"
#include "extract/extract.hpp"
#include "extract/shard_writer.hpp"
#include "heads/base_model.hpp"
#include "heads/stage.hpp"
#include "judge/stage.hpp"
#include "report/reduce.hpp"

namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw sf::IoError(path.string() + ": cannot write");
}

nlohmann::json provenance(const sf::Job& job, const std::string& job_file, const std::vector<std::string>& overrides,
                          const sf::dist::Comm& comm) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  nlohmann::json models = nlohmann::json::object();
  for (const char* role : {"base", "aligned"}) {
    if (!job.has_model(role)) continue;
    const sf::ModelRef& m = job.model(role);
    models[role] = {{"path", m.path.string()},
                    {"template", m.template_name},
                    {"dtype", m.dtype},
                    {"model_fingerprint", sf::heads::model_fingerprint(m.path)},
                    {"tokenizer_sha256", sf::heads::tokenizer_fingerprint(m.path)}};
  }
  return {{"tool_version", sf::build::kVersion},
          {"git_sha", sf::build::kGitSha},
          {"job_file", job_file},
          {"overrides", overrides},
          {"seed", job.seed()},
          {"ranks", comm.size()},
          {"device", job.device()},
          {"host_rank0", host},
          {"started", sf::extract::utc_now_iso8601()},
          {"models", models}};
}

void run(const std::string& job_file, const std::vector<std::string>& overrides) {
  sf::eval::install_stop_handlers();
  const sf::Job job = sf::Job::load(job_file, overrides);
  sf::dist::Comm& comm = sf::dist::Comm::world();
  torch::set_num_threads(comm.threads_per_rank(job.threads()));
  // Check every stage's settings before the first long stage starts.
  const sf::eval::EvaluateSettings eval_settings = sf::eval::read_evaluate_settings(job);
  const sf::report::ReduceSettings reduce_settings = sf::report::ReduceSettings::from_job(job);
  sf::judge::check_judges(job);
  if (comm.is_root()) {
    fs::create_directories(job.run_dir());
    write_text(job.run_dir() / "job.resolved.yaml", job.resolved_yaml() + "\n");
    write_text(job.run_dir() / "provenance.json", provenance(job, job_file, overrides, comm).dump(2) + "\n");
  }
  comm.barrier();

  const bool with_heads = job.has_section("heads");
  const fs::path logits = sf::extract::extract_dir(job) / "logits.h5";
  if (with_heads || job.has_section("extract")) {
    // Decided on rank 0, so every rank takes the same path.
    if (comm.broadcast(std::string(comm.is_root() && fs::exists(logits) ? "done" : "todo")) == "done") {
      spdlog::info("run: extract: {} is complete, skipped", logits.string());
    } else {
      spdlog::info("run: extract");
      sf::extract::run_extract(job, comm);
    }
    comm.barrier();  // rank 0 merges the shards into logits.h5 after the other ranks are done
  }
  if (sf::eval::stop_requested()) throw sf::Interrupted("run: stopped by a signal after extract; rerun to resume");
  if (with_heads) {
    spdlog::info("run: train-head");
    sf::heads::run_train_heads(job, comm);
  }
  if (sf::eval::stop_requested()) throw sf::Interrupted("run: stopped by a signal after train-head; rerun to resume");
  if (sf::eval::evaluate_complete(job)) {
    spdlog::info("run: evaluate: {} is complete, skipped", sf::eval::results_path(job).string());
  } else {
    spdlog::info("run: evaluate");
    sf::eval::ProgressBoard board(job.run_dir() / "progress", "evaluate", comm.rank(), comm.size());
    sf::eval::run_evaluate(job, eval_settings, comm, [&](const sf::eval::EvalProgress& p) {
      board.update(p.units_done, p.units_total, p.examples, p.tokens, p.seconds);
    });
    board.finish();
  }
  if (sf::eval::stop_requested()) throw sf::Interrupted("run: stopped by a signal after evaluate; rerun to resume");
  spdlog::info("run: judge");
  sf::judge::run_judge(job, comm);
  if (comm.is_root()) {
    spdlog::info("run: reduce");
    sf::report::write_summary(job.run_dir(), sf::report::reduce_run(job.run_dir(), job, reduce_settings));
    spdlog::info("run: done: {}/summary.md, {}/report.html", job.run_dir().string(), job.run_dir().string());
  }
  comm.barrier();
}

void setup_run(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "run", "Run a whole study: extract, train-head, evaluate, judge, reduce (skips finished stages)");
  auto job = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("job", *job, "Job file (YAML)")->required();
  cmd->add_option("--set", *overrides, "Override a job key: key.path=value (repeatable)");
  cmd->callback([job, overrides] { run(*job, *overrides); });
}

SF_COMMAND(setup_run);

}  // namespace
