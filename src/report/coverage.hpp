#pragma once
// Frequentist coverage of the intervals in estimate.hpp, by simulation from known rates: the
// evidence behind the README's coverage table (`superficial bench intervals`) and the test that
// keeps it true (tests/report/test_estimate.cpp).
//
// A scenario draws n examples of binary scores (b, a, s): b ~ Bernoulli(p_base),
// a ~ Bernoulli(p_aligned) independently, and s = a with probability `copy_aligned`, else
// s ~ Bernoulli(p_system) independently. The true portion is (E s − E b)/(E a − E b) with
// E s = copy_aligned·p_aligned + (1 − copy_aligned)·p_system.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/estimate.hpp"

namespace sf::report {

struct CoverageScenario {
  std::string name;
  double p_base = 0;
  double p_aligned = 0;
  double p_system = 0;
  double copy_aligned = 0;
  int64_t n = 100;
  double true_portion() const;
  double true_system_rate() const;
};

struct CoverageResult {
  CoverageScenario scenario;
  int64_t datasets = 0;
  double mean_coverage = 0;     // share of datasets whose mean interval of S holds its true rate
  double defined_rate = 0;      // share of datasets where the portion was reported (not n/a)
  double portion_coverage = 0;  // among those, share whose portion interval holds the true portion
  double mean_width = 0;        // average width of the portion interval (when defined)
  nlohmann::json to_json() const;
};

// Simulates `datasets` data sets of the scenario, each estimated with `settings` (seeds derived
// from settings.seed, so the result is reproducible).
CoverageResult simulate_coverage(const CoverageScenario& scenario, int64_t datasets, const EstimateSettings& settings);

// The scenarios of the README table: the paper's Llama-2-7B rows (GSM8K, AdvBench, ToxiGen,
// TruthfulQA), boundary cases (0/n and n/n), partial recovery, and no alignment effect (A = B,
// where the portion must be n/a).
std::vector<CoverageScenario> standard_scenarios();

}  // namespace sf::report
