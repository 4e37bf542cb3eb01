// `superficial judge JOB.yaml [--set key=value ...]`: the tasks' judges score the answers of
// evaluate/results.h5 (run under mpirun: work units are balanced across ranks). Output:
// <run_dir>/judge/judgments.h5 (results-schema/judgments-v1). See src/judge/stage.hpp.
#include <memory>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/job.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "judge/stage.hpp"

namespace {

void judge(const std::string& job_file, const std::vector<std::string>& overrides, bool heldout_only) {
  sf::install_stop_handlers();
  const sf::Job job = sf::Job::load(job_file, overrides);
  sf::dist::Comm& comm = sf::dist::Comm::world();
  torch::set_num_threads(comm.threads_per_rank(job.threads()));
  sf::judge::run_judge(job, comm, heldout_only);
}

void setup_judge(CLI::App& app) {
  auto* cmd = app.add_subcommand("judge", "Score the evaluated answers with the tasks' judges (judge/judgments.h5)");
  auto job = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("job", *job, "Job file (YAML)")->required();
  cmd->add_option("--set", *overrides, "Override a job key: key.path=value (repeatable)");
  auto heldout_only = std::make_shared<bool>(false);
  cmd->add_flag("--heldout-only", *heldout_only,
                "Only measure each judge's accuracy on its held-out items (judge/heldout.json); no answers needed");
  cmd->callback([job, overrides, heldout_only] { judge(*job, *overrides, *heldout_only); });
}

SF_COMMAND(setup_judge);

}  // namespace
