// `superficial evaluate JOB.yaml [--set key=value ...]`: the job's named systems answer its tasks
// (run under mpirun: work units are balanced across ranks). Output: <run_dir>/evaluate/results.h5
// (results-schema/results-v2). See src/eval/evaluate.hpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/job.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "eval/evaluate.hpp"
#include "eval/progress.hpp"
#include "study/study.hpp"

namespace {

void evaluate(const std::string& job_file, const std::vector<std::string>& overrides) {
  sf::install_stop_handlers();
  const sf::Job job = sf::Job::load(job_file, overrides);
  const sf::study::Study study = sf::study::Study::from_job(job);
  const sf::eval::EvaluateSettings settings = sf::eval::read_evaluate_settings(job, study);
  study.check_compatibility(job);
  sf::dist::Comm& comm = sf::dist::Comm::world();
  torch::set_num_threads(comm.threads_per_rank(job.threads()));
  sf::eval::ProgressBoard board(job.run_dir() / "progress", "evaluate", comm.rank(), comm.size());
  sf::eval::run_evaluate(job, study, settings, comm, [&](const sf::eval::EvalProgress& p) {
    board.update(p.units_done, p.units_total, p.examples, p.tokens, p.seconds);
  });
  board.finish();
}

void setup_evaluate(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "Evaluate the job's systems on its tasks");
  auto job = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("job", *job, "Job file (YAML)")->required();
  cmd->add_option("--set", *overrides, "Override a job key: key.path=value (repeatable)");
  cmd->callback([job, overrides] { evaluate(*job, *overrides); });
}

SF_COMMAND(setup_evaluate);

}  // namespace
