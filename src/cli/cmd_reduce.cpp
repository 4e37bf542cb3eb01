// `superficial reduce RUN_DIR`: per task metric, each system's mean with its interval and, per
// comparison, the superficial portions; per-position KL curves; tokens each head moves most.
// Writes RUN_DIR/summary.json (results-schema/summary-v2.json), summary.md and report.html.
// `superficial reduce --check RUN_DIR` only checks an existing summary.json against its schema.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "report/reduce.hpp"

namespace {

void reduce(const std::string& run_dir, bool check_only) {
  if (check_only) {
    const auto problems = sf::report::check_summary_file(std::filesystem::path(run_dir) / "summary.json");
    for (const auto& p : problems) spdlog::error("{}", p);
    if (!problems.empty())
      throw sf::FormatError(run_dir + "/summary.json: " + std::to_string(problems.size()) +
                            " schema problem(s), first: " + problems.front());
    spdlog::info("{}/summary.json follows summary-v2", run_dir);
    return;
  }
  const sf::Job job = sf::report::job_from_results(std::filesystem::path(run_dir) / "evaluate" / "results.h5");
  const auto settings = sf::report::ReduceSettings::from_job(job);
  const auto summary = sf::report::reduce_run(run_dir, job, settings);
  sf::report::write_summary(run_dir, summary);
  spdlog::info("reduce: wrote {0}/summary.json, {0}/summary.md, {0}/report.html", run_dir);
}

void setup_reduce(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("reduce", "Summarise a run: metrics with CIs, superficial portions, KL curves, report");
  auto run_dir = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  cmd->add_option("run_dir", *run_dir, "The run folder (run_dir of the job)")->required();
  cmd->add_flag("--check", *check, "Only check RUN_DIR/summary.json against results-schema/summary-v2.json");
  cmd->callback([run_dir, check] { reduce(*run_dir, *check); });
}

SF_COMMAND(setup_reduce);

}  // namespace
