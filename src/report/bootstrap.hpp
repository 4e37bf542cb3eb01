#pragma once
// Seeded percentile bootstrap over examples, and the paired bootstrap of the superficial portion
// (S − B)/(A − B): every resample draws one set of example indices and evaluates all systems on it,
// so the systems' differences keep their pairing.
//
// The portion is "n/a" when the aligned model's improvement over the base is within noise: the
// bootstrap confidence interval of A − B contains 0 (or no resample has A ≠ B). Otherwise its point
// value is computed on the full sample and its interval from the resamples with A ≠ B.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace sf::report {

struct BootstrapSettings {
  int64_t resamples = 1000;
  double confidence = 0.95;
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
};

// Mean of `x` with a percentile CI. ShapeError when `x` is empty or settings are invalid.
MeanEstimate bootstrap_mean(const std::vector<double>& x, const BootstrapSettings& settings);

struct PortionEstimate {
  MeanEstimate base, aligned, head;  // each system's mean with its (paired-resample) CI
  double diff = 0;                   // A − B on the full sample
  Interval diff_ci;                  // CI of A − B
  bool defined = false;              // false: "n/a"
  std::string reason;                // why it is n/a (empty when defined)
  double value = 0;                  // (S − B)/(A − B) when defined
  Interval ci;                       // its CI when defined
  int64_t resamples_used = 0;        // resamples with A ≠ B
};

// base/aligned/head: per-example scores of the same examples in the same order (ShapeError otherwise).
PortionEstimate bootstrap_portion(const std::vector<double>& base, const std::vector<double>& aligned,
                                  const std::vector<double>& head, const BootstrapSettings& settings);

// The q-quantile (0..1) of `values` with linear interpolation between order statistics.
double quantile(std::vector<double> values, double q);

// A seed for one (task, metric) stream derived from the job seed, stable across platforms.
uint64_t derive_seed(uint64_t seed, const std::string& label);

}  // namespace sf::report
