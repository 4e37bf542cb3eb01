// `superficial train-head JOB.yaml [--set key=value ...]`: the train-head stage (src/heads/stage.hpp)
// alone, and `superficial export-merged --base DIR --head H --out DIR2`: folds a hidden head into
// lm_head.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/job.hpp"
#include "dist/comm.hpp"
#include "heads/export.hpp"
#include "heads/stage.hpp"
#include "study/study.hpp"

namespace {

void setup_heads(CLI::App& app) {
  auto* train = app.add_subcommand("train-head", "Train the superficial heads listed in a job's heads: section");
  auto job = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  train->add_option("job", *job, "Job file (YAML)")->required();
  train->add_option("--set", *overrides, "Override a job key: key.path=value (repeatable)");
  train->callback([job, overrides] {
    const sf::Job j = sf::Job::load(*job, *overrides);
    sf::heads::run_train_heads(j, sf::study::Study::from_job(j), sf::dist::Comm::world());
  });

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
