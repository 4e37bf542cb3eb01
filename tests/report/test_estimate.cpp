#include <gtest/gtest.h>

#include <random>

#include "core/error.hpp"
#include "report/coverage.hpp"
#include "report/estimate.hpp"

namespace {

using sf::report::EstimateSettings;

std::vector<double> bernoulli(double p, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x(static_cast<size_t>(n));
  for (auto& v : x) v = static_cast<double>(rng() >> 11) * 0x1.0p-53 < p ? 1.0 : 0.0;
  return x;
}

TEST(ClopperPearson, KnownValues) {
  // Reference values from scipy.stats.beta.ppf (exact Clopper–Pearson).
  auto i = sf::report::clopper_pearson(0, 100, 0.95);
  EXPECT_EQ(i.lo, 0.0);
  EXPECT_NEAR(i.hi, 0.036217, 1e-6);
  i = sf::report::clopper_pearson(100, 100, 0.95);
  EXPECT_NEAR(i.lo, 0.963783, 1e-6);
  EXPECT_EQ(i.hi, 1.0);
  i = sf::report::clopper_pearson(37, 1000, 0.95);
  EXPECT_NEAR(i.lo, 0.026183, 1e-6);
  EXPECT_NEAR(i.hi, 0.050641, 1e-6);
  i = sf::report::clopper_pearson(5, 10, 0.9);
  EXPECT_NEAR(i.lo, 0.222441, 1e-6);
  EXPECT_NEAR(i.hi, 0.777559, 1e-6);
  EXPECT_THROW(sf::report::clopper_pearson(3, 2, 0.95), sf::ShapeError);
  EXPECT_THROW(sf::report::clopper_pearson(0, 0, 0.95), sf::ShapeError);
}

TEST(EstimateMean, BinaryUsesExactIntervalEvenAtTheBoundary) {
  const std::vector<double> zeros(100, 0.0);
  const auto e = sf::report::estimate_mean(zeros, {1000, 0.95, 1});
  EXPECT_EQ(e.method, "clopper-pearson");
  EXPECT_EQ(e.mean, 0.0);
  EXPECT_EQ(e.ci.lo, 0.0);
  EXPECT_GT(e.ci.hi, 0.03);  // a percentile bootstrap would give [0, 0]
}

TEST(EstimateMean, ContinuousUsesSeededBootstrap) {
  std::vector<double> x;
  for (int i = 0; i < 50; ++i) x.push_back((i % 7) / 7.0);
  const auto a = sf::report::estimate_mean(x, {500, 0.95, 42});
  const auto b = sf::report::estimate_mean(x, {500, 0.95, 42});
  const auto c = sf::report::estimate_mean(x, {500, 0.95, 43});
  EXPECT_EQ(a.method, "bootstrap-percentile");
  EXPECT_EQ(a.ci.lo, b.ci.lo);
  EXPECT_EQ(a.ci.hi, b.ci.hi);
  EXPECT_TRUE(a.ci.lo != c.ci.lo || a.ci.hi != c.ci.hi);
  EXPECT_LT(a.ci.lo, a.mean);
  EXPECT_GT(a.ci.hi, a.mean);
}

TEST(EstimateMean, RejectsScoresOutsideTheUnitInterval) {
  EXPECT_THROW(sf::report::estimate_mean({0.5, 1.5}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::estimate_mean({0.5, std::nan("")}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::estimate_mean({}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::estimate_mean({1.0}, {5, 0.95, 1}), sf::ShapeError);
}

TEST(EstimatePortion, FullRecoveryAtTheBoundaryHasAnHonestInterval) {
  // Base complies always, aligned and system never: a percentile bootstrap gives [1.00, 1.00].
  const std::vector<double> b(100, 1.0), a(100, 0.0), s(100, 0.0);
  const auto p = sf::report::estimate_portion(b, a, s, {2000, 0.95, 7});
  ASSERT_TRUE(p.defined) << p.reason;
  EXPECT_DOUBLE_EQ(p.value, 1.0);
  EXPECT_TRUE(p.ci.contains(1.0));
  EXPECT_LT(p.ci.lo, 0.99);
  EXPECT_GT(p.ci.hi, 1.01);
  EXPECT_DOUBLE_EQ(p.diff, -1.0);
  EXPECT_LT(p.diff_ci.hi, -0.85);
}

TEST(EstimatePortion, PointValueAndDeterminism) {
  const auto b = bernoulli(0.1, 400, 1), a = bernoulli(0.8, 400, 2), s = bernoulli(0.45, 400, 3);
  const auto p = sf::report::estimate_portion(b, a, s, {1000, 0.95, 7});
  ASSERT_TRUE(p.defined);
  const auto mean = [](const std::vector<double>& x) {
    double t = 0;
    for (double v : x) t += v;
    return t / static_cast<double>(x.size());
  };
  EXPECT_NEAR(p.value, (mean(s) - mean(b)) / (mean(a) - mean(b)), 1e-12);
  EXPECT_TRUE(p.ci.contains(p.value));
  const auto again = sf::report::estimate_portion(b, a, s, {1000, 0.95, 7});
  EXPECT_EQ(p.ci.lo, again.ci.lo);
  EXPECT_EQ(p.ci.hi, again.ci.hi);
  EXPECT_EQ(p.method, "paired-bayesian-bootstrap-jeffreys");
}

TEST(EstimatePortion, NoAlignmentEffectIsNotApplicable) {
  const auto b = bernoulli(0.3, 100, 11), a = bernoulli(0.3, 100, 11), s = bernoulli(0.5, 100, 12);
  const auto p = sf::report::estimate_portion(b, a, s, {1000, 0.95, 1});
  EXPECT_FALSE(p.defined);
  EXPECT_NE(p.reason.find("contains 0"), std::string::npos);
  EXPECT_THROW(sf::report::estimate_portion({1, 0}, {1}, {0, 0}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::estimate_portion({}, {}, {}, {100, 0.95, 1}), sf::ShapeError);
}

TEST(Quantile, LinearInterpolation) {
  EXPECT_DOUBLE_EQ(sf::report::quantile({3, 1, 2}, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(sf::report::quantile({0, 10}, 0.25), 2.5);
  EXPECT_DOUBLE_EQ(sf::report::quantile({5}, 0.975), 5.0);
  EXPECT_THROW(sf::report::quantile({}, 0.5), sf::ShapeError);
}

// The intervals' frequentist coverage over simulated data sets with known rates: at least the
// nominal 95% minus 2 points for means and portions; where A = B the portion is n/a in at least
// 93% of the data sets.
TEST(Coverage, IntervalsHoldTheTruthAtNominalMinusTwoPoints) {
  const EstimateSettings settings{500, 0.95, 2024};
  for (auto sc : sf::report::standard_scenarios()) {
    if (sc.n > 200) sc.n = 200;  // keeps the test short; `bench intervals` runs the full sizes
    const auto r = sf::report::simulate_coverage(sc, 400, settings);
    SCOPED_TRACE(r.to_json().dump());
    std::cout << r.to_json().dump() << "\n";
    EXPECT_GE(r.mean_coverage, 0.93);
    if (sc.p_aligned == sc.p_base) {
      EXPECT_LE(r.defined_rate, 0.07);
    } else {
      EXPECT_GE(r.defined_rate, 0.5);
      EXPECT_GE(r.portion_coverage, 0.93);
    }
  }
}

}  // namespace
