// `superficial run JOB.yaml [--set key=value ...]`: the whole study in one (MPI) job:
// extract (once per pair) → train-head → evaluate → judge → reduce. A stage whose output is complete
// is skipped, and the stages themselves resume from their finished chunks, so a requeued job
// continues where it stopped.
//
// Every run folder keeps job.resolved.yaml (the job after --set) and provenance.json (tool version,
// git SHA, seeds, ranks, model and tokenizer fingerprints, start time).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/atomic_file.hpp"
#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/job.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "dist/run_lock.hpp"
#include "eval/evaluate.hpp"
#include "eval/progress.hpp"
#include "extract/extract.hpp"
#include "heads/base_model.hpp"
#include "heads/stage.hpp"
#include "judge/stage.hpp"
#include "model/memory_plan.hpp"
#include "report/reduce.hpp"
#include "study/model_set.hpp"
#include "study/study.hpp"

namespace {

namespace fs = std::filesystem;

nlohmann::json provenance(const sf::Job& job, const std::string& job_file, const std::vector<std::string>& overrides,
                          const sf::dist::Comm& comm) {
  nlohmann::json models = nlohmann::json::object();
  for (const auto& [name, m] : job.models()) {
    models[name] = {{"path", m.path.string()},
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
          {"host_rank0", sf::dist::host_name()},
          {"started", sf::utc_now_iso8601()},
          {"models", models}};
}

void stop_point(const char* after) {
  if (sf::stop_requested())
    throw sf::Interrupted(std::string("run: stopped by a signal after ") + after + "; rerun to resume");
}

void run(const std::string& job_file, const std::vector<std::string>& overrides) {
  sf::install_stop_handlers();
  const sf::Job job = sf::Job::load(job_file, overrides);
  sf::dist::Comm& comm = sf::dist::Comm::world();
  torch::set_num_threads(comm.threads_per_rank(job.threads()));
  // Check the whole study and every stage's settings before the first long stage starts.
  const sf::study::Study study = sf::study::Study::from_job(job);
  const sf::eval::EvaluateSettings eval_settings = sf::eval::read_evaluate_settings(job, study);
  const sf::report::ReduceSettings reduce_settings = sf::report::ReduceSettings::from_job(job);
  if (!study.pairs().empty()) sf::extract::ExtractOptions::from_job(job);
  study.check_compatibility(job);
  sf::judge::check_judges(job);
  // A rank without a GPU of its own, or a tensor-parallel size whose split models would not fit
  // this node's GPUs (with the plan's table in the message, `superficial plan`), stops the run before
  // any weights are read.
  if (job.device() == "cuda") {
    const torch::Device device = sf::study::rank_device(job, comm);
    if (const auto budget = sf::model::cuda_device_budget(comm.local_size(), device.index()))
      sf::model::plan_job(sf::model::plan_inputs(job, sf::model::kPlanPromptTokens), *budget)
          .check(job.tensor_parallel());
  }
  const auto lock = sf::dist::lock_run_folder(job, "run " + job_file, comm);
  if (comm.is_root()) {
    fs::create_directories(job.run_dir());
    sf::write_file_atomically(job.run_dir() / "job.resolved.yaml", job.resolved_yaml() + "\n");
    sf::write_file_atomically(job.run_dir() / "provenance.json",
                              provenance(job, job_file, overrides, comm).dump(2) + "\n");
  }
  comm.barrier();

  for (const auto& pair : study.pairs()) {
    spdlog::info("run: extract {}", pair.id());
    sf::extract::run_extract(job, study, pair, comm);
    comm.barrier();  // rank 0 merges the shards into logits.h5 after the other ranks are done
    stop_point("extract");
  }
  if (!study.pairs().empty()) {
    spdlog::info("run: train-head");
    sf::heads::run_train_heads(job, study, comm);
    stop_point("train-head");
  }
  if (sf::eval::evaluate_complete(job)) {
    spdlog::info("run: evaluate: {} is complete, skipped", sf::eval::results_path(job).string());
  } else {
    spdlog::info("run: evaluate");
    sf::eval::ProgressBoard board(job.run_dir() / "progress", "evaluate", comm.rank(), comm.size());
    sf::eval::run_evaluate(job, study, eval_settings, comm, [&](const sf::eval::EvalProgress& p) {
      board.update(p.units_done, p.units_total, p.examples, p.tokens, p.seconds);
    });
    board.finish();
  }
  stop_point("evaluate");
  spdlog::info("run: judge");
  sf::judge::run_judge(job, comm);
  stop_point("judge");
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
