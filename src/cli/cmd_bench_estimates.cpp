// `superficial bench intervals`: coverage of the reported intervals over simulated data sets with
// known rates (report/coverage.hpp), one JSON line per scenario. `superficial bench train-head`:
// head training's peak memory against heads.max_memory_mb on a synthetic dataset
// (heads/memory_bench.hpp).
#include <cstdio>
#include <memory>

#include "cli/command.hpp"
#include "heads/memory_bench.hpp"
#include "report/coverage.hpp"

namespace {

void bench_intervals(int64_t datasets, int64_t resamples, uint64_t seed) {
  const sf::report::EstimateSettings settings{resamples, 0.95, seed};
  for (const auto& sc : sf::report::standard_scenarios()) {
    std::printf("%s\n", sf::report::simulate_coverage(sc, datasets, settings).to_json().dump().c_str());
    std::fflush(stdout);
  }
}

void setup(CLI::App& app) {
  auto& bench = sf::cli::bench_group(app);
  auto* intervals =
      bench.add_subcommand("intervals", "Coverage of the mean and portion intervals on simulated data sets");
  auto datasets = std::make_shared<int64_t>(1000);
  auto resamples = std::make_shared<int64_t>(1000);
  auto seed = std::make_shared<uint64_t>(2024);
  intervals->add_option("--datasets", *datasets, "Simulated data sets per scenario")->capture_default_str();
  intervals->add_option("--resamples", *resamples, "Bootstrap resamples per data set")->capture_default_str();
  intervals->add_option("--seed", *seed, "Seed")->capture_default_str();
  intervals->callback([=] { bench_intervals(*datasets, *resamples, *seed); });

  auto* memory =
      bench.add_subcommand("train-head", "Peak memory of head training against its bound, on a synthetic dataset");
  auto o = std::make_shared<sf::heads::MemoryBenchOptions>();
  o->dir = "bench-train-head";
  memory->add_option("--dir", o->dir, "Scratch folder (removed afterwards)")->capture_default_str();
  memory->add_option("--dataset-mb", o->dataset_mb, "Dataset size (positions in memory terms)")->capture_default_str();
  memory->add_option("--bound-mb", o->bound_mb, "heads.max_memory_mb")->capture_default_str();
  memory->add_option("--vocab", o->vocab, "Vocabulary size")->capture_default_str();
  memory->add_option("--hidden", o->hidden, "Hidden size")->capture_default_str();
  memory->add_option("--top-k", o->top_k, "Teacher top-k")->capture_default_str();
  memory->add_option("--batch-tokens", o->batch_tokens, "Positions per step")->capture_default_str();
  memory->callback([o] { std::printf("%s\n", sf::heads::bench_training_memory(*o).dump().c_str()); });
}

SF_COMMAND(setup);

}  // namespace
