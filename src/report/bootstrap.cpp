#include "report/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.hpp"

namespace sf::report {
namespace {

void check(const BootstrapSettings& s) {
  if (s.resamples < 10) throw ShapeError("bootstrap: resamples must be >= 10, got " + std::to_string(s.resamples));
  if (!(s.confidence > 0 && s.confidence < 1))
    throw ShapeError("bootstrap: confidence must be in (0, 1), got " + std::to_string(s.confidence));
}

// Uniform index in [0, n) from 53 random bits (same sequence on every platform, unlike
// std::uniform_int_distribution).
int64_t draw(std::mt19937_64& rng, int64_t n) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return std::min<int64_t>(static_cast<int64_t>(u * static_cast<double>(n)), n - 1);
}

double mean(const std::vector<double>& x) { return std::accumulate(x.begin(), x.end(), 0.0) / x.size(); }

Interval percentile_interval(const std::vector<double>& stats, double confidence) {
  const double a = (1.0 - confidence) / 2.0;
  return {quantile(stats, a), quantile(stats, 1.0 - a)};
}

}  // namespace

double quantile(std::vector<double> values, double q) {
  if (values.empty()) throw ShapeError("quantile: no values");
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

uint64_t derive_seed(uint64_t seed, const std::string& label) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the label, keyed by the seed
  for (unsigned char c : label) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

MeanEstimate bootstrap_mean(const std::vector<double>& x, const BootstrapSettings& settings) {
  check(settings);
  if (x.empty()) throw ShapeError("bootstrap_mean: no examples");
  const auto n = static_cast<int64_t>(x.size());
  std::mt19937_64 rng(settings.seed);
  std::vector<double> stats(static_cast<size_t>(settings.resamples));
  for (auto& s : stats) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[static_cast<size_t>(draw(rng, n))];
    s = sum / static_cast<double>(n);
  }
  return {n, mean(x), percentile_interval(stats, settings.confidence)};
}

PortionEstimate bootstrap_portion(const std::vector<double>& base, const std::vector<double>& aligned,
                                  const std::vector<double>& head, const BootstrapSettings& settings) {
  check(settings);
  if (base.empty()) throw ShapeError("bootstrap_portion: no examples");
  if (aligned.size() != base.size() || head.size() != base.size())
    throw ShapeError("bootstrap_portion: systems scored on different numbers of examples (" +
                     std::to_string(base.size()) + ", " + std::to_string(aligned.size()) + ", " +
                     std::to_string(head.size()) + ")");
  const auto n = static_cast<int64_t>(base.size());
  const auto r = static_cast<size_t>(settings.resamples);
  std::vector<double> sb(r), sa(r), ss(r), diffs(r), portions;
  std::mt19937_64 rng(settings.seed);
  for (size_t k = 0; k < r; ++k) {
    double b = 0, a = 0, s = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto j = static_cast<size_t>(draw(rng, n));
      b += base[j];
      a += aligned[j];
      s += head[j];
    }
    sb[k] = b / n;
    sa[k] = a / n;
    ss[k] = s / n;
    diffs[k] = sa[k] - sb[k];
    if (diffs[k] != 0) portions.push_back((ss[k] - sb[k]) / diffs[k]);
  }
  PortionEstimate p;
  p.base = {n, mean(base), percentile_interval(sb, settings.confidence)};
  p.aligned = {n, mean(aligned), percentile_interval(sa, settings.confidence)};
  p.head = {n, mean(head), percentile_interval(ss, settings.confidence)};
  p.diff = p.aligned.mean - p.base.mean;
  p.diff_ci = percentile_interval(diffs, settings.confidence);
  p.resamples_used = static_cast<int64_t>(portions.size());
  if (p.diff == 0 || p.diff_ci.contains(0.0) || portions.empty()) {
    p.reason = "aligned - base is within noise: its " + std::to_string(static_cast<int>(settings.confidence * 100)) +
               "% CI [" + std::to_string(p.diff_ci.lo) + ", " + std::to_string(p.diff_ci.hi) + "] contains 0";
    return p;
  }
  p.defined = true;
  p.value = (p.head.mean - p.base.mean) / p.diff;
  p.ci = percentile_interval(portions, settings.confidence);
  return p;
}

}  // namespace sf::report
