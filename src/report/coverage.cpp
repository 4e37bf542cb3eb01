#include "report/coverage.hpp"

#include <random>

#include "core/error.hpp"

namespace sf::report {
namespace {

double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

double CoverageScenario::true_system_rate() const { return copy_aligned * p_aligned + (1.0 - copy_aligned) * p_system; }

double CoverageScenario::true_portion() const { return (true_system_rate() - p_base) / (p_aligned - p_base); }

nlohmann::json CoverageResult::to_json() const {
  return {{"scenario", scenario.name},
          {"n", scenario.n},
          {"p_base", scenario.p_base},
          {"p_aligned", scenario.p_aligned},
          {"p_system", scenario.true_system_rate()},
          {"true_portion",
           scenario.p_aligned == scenario.p_base ? nlohmann::json(nullptr) : nlohmann::json(scenario.true_portion())},
          {"datasets", datasets},
          {"mean_coverage", mean_coverage},
          {"portion_defined_rate", defined_rate},
          {"portion_coverage", portion_coverage},
          {"portion_mean_width", mean_width}};
}

CoverageResult simulate_coverage(const CoverageScenario& sc, int64_t datasets, const EstimateSettings& settings) {
  if (datasets < 1 || sc.n < 1) throw ShapeError("simulate_coverage: datasets and n must be positive");
  std::mt19937_64 rng(derive_seed(settings.seed, "coverage/" + sc.name));
  const bool has_effect = sc.p_aligned != sc.p_base;
  const double truth = has_effect ? sc.true_portion() : 0.0;
  const double s_rate = sc.true_system_rate();
  int64_t mean_hits = 0, defined = 0, portion_hits = 0;
  double width = 0;
  std::vector<double> b(static_cast<size_t>(sc.n)), a(b.size()), s(b.size());
  for (int64_t d = 0; d < datasets; ++d) {
    for (size_t i = 0; i < b.size(); ++i) {
      b[i] = uniform(rng) < sc.p_base ? 1.0 : 0.0;
      a[i] = uniform(rng) < sc.p_aligned ? 1.0 : 0.0;
      s[i] = uniform(rng) < sc.copy_aligned ? a[i] : (uniform(rng) < sc.p_system ? 1.0 : 0.0);
    }
    EstimateSettings e = settings;
    e.seed = derive_seed(settings.seed, "dataset/" + std::to_string(d));
    if (estimate_mean(s, e).ci.contains(s_rate)) ++mean_hits;
    const PortionEstimate p = estimate_portion(b, a, s, e);
    if (!p.defined) continue;
    ++defined;
    width += p.ci.hi - p.ci.lo;
    if (has_effect && p.ci.contains(truth)) ++portion_hits;
  }
  CoverageResult r;
  r.scenario = sc;
  r.datasets = datasets;
  r.mean_coverage = static_cast<double>(mean_hits) / static_cast<double>(datasets);
  r.defined_rate = static_cast<double>(defined) / static_cast<double>(datasets);
  r.portion_coverage = defined > 0 ? static_cast<double>(portion_hits) / static_cast<double>(defined) : 0.0;
  r.mean_width = defined > 0 ? width / static_cast<double>(defined) : 0.0;
  return r;
}

std::vector<CoverageScenario> standard_scenarios() {
  return {
      {"paper-gsm8k", 0.037, 0.230, 0.140, 0.0, 1000},
      {"paper-advbench", 0.66, 0.0, 0.0, 0.0, 100},
      {"paper-toxigen", 0.77, 0.0, 0.0, 0.0, 100},
      {"paper-truthfulqa", 0.34, 0.68, 0.66, 0.0, 100},
      {"boundary-all-to-none", 1.0, 0.0, 0.0, 0.0, 100},
      {"boundary-near-full", 1.0, 0.0, 0.05, 0.0, 100},
      {"partial-correlated", 0.2, 0.8, 0.2, 0.7, 100},
      {"partial-small-n", 0.5, 0.9, 0.7, 0.0, 50},
      {"no-effect", 0.3, 0.3, 0.3, 0.0, 100},
  };
}

}  // namespace sf::report
