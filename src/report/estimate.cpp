#include "report/estimate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.hpp"

namespace sf::report {
namespace {

void check(const EstimateSettings& s) {
  if (s.resamples < 10) throw ShapeError("estimate: resamples must be >= 10, got " + std::to_string(s.resamples));
  if (!(s.confidence > 0 && s.confidence < 1))
    throw ShapeError("estimate: confidence must be in (0, 1), got " + std::to_string(s.confidence));
}

void check_scores(const std::vector<double>& x, const char* what) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || x[i] < 0.0 || x[i] > 1.0)
      throw ShapeError(std::string(what) + ": score " + std::to_string(x[i]) + " of example " + std::to_string(i) +
                       " is not in [0, 1]");
  }
}

// Uniform in [0, 1) from 53 random bits (the same sequence on every platform, unlike the
// standard library's distributions).
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Uniform index in [0, n).
int64_t draw_index(std::mt19937_64& rng, int64_t n) {
  return std::min<int64_t>(static_cast<int64_t>(uniform(rng) * static_cast<double>(n)), n - 1);
}

double standard_normal(std::mt19937_64& rng) {
  // Box–Muller; 1 - u keeps the logarithm's argument in (0, 1].
  const double u1 = 1.0 - uniform(rng), u2 = uniform(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through Gamma(shape + 1)·U^(1/shape).
double gamma_draw(std::mt19937_64& rng, double shape) {
  if (shape < 1.0) return gamma_draw(rng, shape + 1.0) * std::pow(1.0 - uniform(rng), 1.0 / shape);
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x = 0, v = 0;
    do {
      x = standard_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - uniform(rng);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

double mean(const std::vector<double>& x) {
  return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

Interval central(const std::vector<double>& stats, double confidence) {
  const double a = (1.0 - confidence) / 2.0;
  return {quantile(stats, a), quantile(stats, 1.0 - a)};
}

// Continued fraction of the regularised incomplete beta function (modified Lentz).
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-15) break;
  }
  return h;
}

// I_x(a, b), the CDF of Beta(a, b) at x.
double regularized_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_continued_fraction(b, a, 1.0 - x) / b;
}

// The p-quantile of Beta(a, b), by bisection (the CDF is monotone; 200 halvings reach double precision).
double beta_quantile(double p, double a, double b) {
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (regularized_beta(a, b, mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

bool binary(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return v == 0.0 || v == 1.0; });
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

Interval clopper_pearson(int64_t successes, int64_t n, double confidence) {
  if (n <= 0 || successes < 0 || successes > n)
    throw ShapeError("clopper_pearson: need 0 <= successes <= n and n > 0, got " + std::to_string(successes) + " of " +
                     std::to_string(n));
  if (!(confidence > 0 && confidence < 1)) throw ShapeError("clopper_pearson: confidence must be in (0, 1)");
  const double alpha = 1.0 - confidence;
  const auto x = static_cast<double>(successes), m = static_cast<double>(n);
  const double lo = successes == 0 ? 0.0 : beta_quantile(alpha / 2.0, x, m - x + 1.0);
  const double hi = successes == n ? 1.0 : beta_quantile(1.0 - alpha / 2.0, x + 1.0, m - x);
  return {lo, hi};
}

MeanEstimate estimate_mean(const std::vector<double>& x, const EstimateSettings& settings) {
  check(settings);
  if (x.empty()) throw ShapeError("estimate_mean: no examples");
  check_scores(x, "estimate_mean");
  const auto n = static_cast<int64_t>(x.size());
  if (binary(x)) {
    const auto successes = static_cast<int64_t>(std::count(x.begin(), x.end(), 1.0));
    return {n, mean(x), clopper_pearson(successes, n, settings.confidence), "clopper-pearson"};
  }
  std::mt19937_64 rng(settings.seed);
  std::vector<double> stats(static_cast<size_t>(settings.resamples));
  for (auto& s : stats) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[static_cast<size_t>(draw_index(rng, n))];
    s = sum / static_cast<double>(n);
  }
  return {n, mean(x), central(stats, settings.confidence), "bootstrap-percentile"};
}

PortionEstimate estimate_portion(const std::vector<double>& base, const std::vector<double>& aligned,
                                 const std::vector<double>& system, const EstimateSettings& settings) {
  check(settings);
  if (base.empty()) throw ShapeError("estimate_portion: no examples");
  if (aligned.size() != base.size() || system.size() != base.size())
    throw ShapeError("estimate_portion: systems scored on different numbers of examples (" +
                     std::to_string(base.size()) + ", " + std::to_string(aligned.size()) + ", " +
                     std::to_string(system.size()) + ")");
  check_scores(base, "estimate_portion (base)");
  check_scores(aligned, "estimate_portion (aligned)");
  check_scores(system, "estimate_portion (system)");
  const size_t n = base.size();
  const auto r = static_cast<size_t>(settings.resamples);
  constexpr double kPseudoWeight = 0.5;  // Jeffreys: Dirichlet(1/2) for each corner of {0,1}³
  std::mt19937_64 rng(settings.seed);
  std::vector<double> diffs(r), ratios(r);
  for (size_t k = 0; k < r; ++k) {
    double w_sum = 0, b = 0, a = 0, s = 0;
    for (size_t i = 0; i < n; ++i) {
      const double w = -std::log(1.0 - uniform(rng));  // Exp(1) = Gamma(1)
      w_sum += w;
      b += w * base[i];
      a += w * aligned[i];
      s += w * system[i];
    }
    for (int corner = 0; corner < 8; ++corner) {
      const double w = gamma_draw(rng, kPseudoWeight);
      w_sum += w;
      b += w * (corner & 1);
      a += w * ((corner >> 1) & 1);
      s += w * ((corner >> 2) & 1);
    }
    diffs[k] = (a - b) / w_sum;
    ratios[k] = (s - b) / (a - b);
  }
  PortionEstimate p;
  p.n = static_cast<int64_t>(n);
  p.method = "paired-bayesian-bootstrap-jeffreys";
  const double mb = mean(base), ma = mean(aligned), ms = mean(system);
  p.diff = ma - mb;
  p.diff_ci = central(diffs, settings.confidence);
  if (p.diff == 0 || p.diff_ci.contains(0.0)) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "aligned - base is within noise: its %g%% interval [%.4f, %.4f] contains 0",
                  settings.confidence * 100, p.diff_ci.lo, p.diff_ci.hi);
    p.reason = buf;
    return p;
  }
  p.defined = true;
  p.value = (ms - mb) / p.diff;
  p.ci = central(ratios, settings.confidence);
  return p;
}

}  // namespace sf::report
