// `superficial train CONFIG.yaml [--set key=value ...]`: trains (or resumes, or finds finished) one
// model from a trainer config (see src/train/train_config.hpp). Run under mpirun for data
// parallelism; every rank reads the same config.
#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "cli/command.hpp"
#include "train/train_config.hpp"
#include "train/trainer.hpp"

namespace {

void setup_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model: pretrain, sft or compromise recipe (configs/demo/*.yaml)");
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "Trainer config (YAML)")->required();
  cmd->add_option("--set", *overrides, "Override a config key: key.path=value (repeatable)");
  cmd->callback([config, overrides] {
    const auto c = sf::train::TrainConfig::load(*config, *overrides);
    const auto r = sf::train::run_training(c);
    if (!r.complete) spdlog::info("stopped after step {} (stop_after); run again to resume", r.last_step);
  });
}

SF_COMMAND(setup_train);

}  // namespace
