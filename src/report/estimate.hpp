#pragma once
// Point estimates and intervals for per-example scores in [0, 1] (accuracy, harm rate, MC1/MC2,
// judge verdicts and probabilities). Which estimator is used is part of every result
// (MeanEstimate::method, PortionEstimate::method) and documented in results-schema/summary-v2.md.
//
// Means.
//   Binary scores (every value 0 or 1): the exact Clopper–Pearson interval of a binomial
//   proportion. Its coverage is at least the nominal level for every true rate and sample size,
//   also at 0/n and n/n, where a percentile bootstrap collapses to [0, 0] or [1, 1].
//   Other scores: the seeded percentile bootstrap over examples.
//
// Differences and portions (paired: the same examples under every system).
//   A paired Bayesian bootstrap (Rubin 1981): each resample weights the examples by a draw of
//   Dirichlet(1, ..., 1) and evaluates every system under the same weights, so the pairing is
//   kept. To keep the interval honest at the boundary (0/n, n/n, all systems identical on every
//   example), eight pseudo-examples, one at each corner of {0,1}³ for (base, aligned, system), join
//   the sample with Dirichlet weight 1/2 each: for binary scores this is exactly the posterior of
//   the eight-cell multinomial under the Jeffreys prior.
//   A − B: the posterior mean on the full sample (the plain difference of means) with the central
//   credible interval of the resampled differences.
//   Portion (S − B)/(A − B): "n/a" when the interval of A − B contains 0 (the aligned model does not
//   differ from the base beyond noise; the ratio is then unbounded). Otherwise the point value is
//   the ratio of the sample means and its interval the central interval of the resampled ratios.
//   Coverage was checked by simulation over known rates (tests/report/test_estimate.cpp) and is
//   stated in README.
#include <cstdint>
#include <string>
#include <vector>

namespace sf::report {

struct EstimateSettings {
  int64_t resamples = 1000;  // bootstrap resamples (>= 10)
  double confidence = 0.95;  // in (0, 1)
  uint64_t seed = 0;
};

struct Interval {
  double lo = 0;
  double hi = 0;
  bool contains(double x) const { return lo <= x && x <= hi; }
};

struct MeanEstimate {
  int64_t n = 0;
  double mean = 0;
  Interval ci;
  std::string method;  // "clopper-pearson" | "bootstrap-percentile"
};

// Mean of scores in [0, 1] with the interval described above. ShapeError when `x` is empty, a
// value lies outside [0, 1] or is not finite, or the settings are invalid.
MeanEstimate estimate_mean(const std::vector<double>& x, const EstimateSettings& settings);

// Exact (Clopper–Pearson) interval for `successes` of `n` at `confidence`.
Interval clopper_pearson(int64_t successes, int64_t n, double confidence);

struct PortionEstimate {
  int64_t n = 0;
  double diff = 0;       // A − B, difference of the sample means
  Interval diff_ci;      // its credible interval
  bool defined = false;  // false: "n/a"
  std::string reason;    // why it is n/a (empty when defined)
  double value = 0;      // (S − B)/(A − B) when defined
  Interval ci;           // its interval when defined
  std::string method;    // "paired-bayesian-bootstrap-jeffreys"
};

// base/aligned/system: per-example scores in [0, 1] of the same examples in the same order
// (ShapeError otherwise).
PortionEstimate estimate_portion(const std::vector<double>& base, const std::vector<double>& aligned,
                                 const std::vector<double>& system, const EstimateSettings& settings);

// The q-quantile (0..1) of `values` with linear interpolation between order statistics.
double quantile(std::vector<double> values, double q);

// A seed for one (task, metric, ...) stream derived from the job seed, stable across platforms.
uint64_t derive_seed(uint64_t seed, const std::string& label);

}  // namespace sf::report
