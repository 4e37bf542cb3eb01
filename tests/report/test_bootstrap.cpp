#include <gtest/gtest.h>

#include <random>

#include "report/bootstrap.hpp"

namespace {

using sf::report::BootstrapSettings;

std::vector<double> bernoulli(double p, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x(static_cast<size_t>(n));
  for (auto& v : x) v = static_cast<double>(rng() >> 11) * 0x1.0p-53 < p ? 1.0 : 0.0;
  return x;
}

TEST(Bootstrap, SeededDeterminism) {
  const auto x = bernoulli(0.3, 200, 1);
  BootstrapSettings s{500, 0.95, 42};
  const auto a = sf::report::bootstrap_mean(x, s);
  const auto b = sf::report::bootstrap_mean(x, s);
  EXPECT_EQ(a.ci.lo, b.ci.lo);
  EXPECT_EQ(a.ci.hi, b.ci.hi);
  s.seed = 43;
  const auto c = sf::report::bootstrap_mean(x, s);
  EXPECT_TRUE(a.ci.lo != c.ci.lo || a.ci.hi != c.ci.hi);
  EXPECT_LE(a.ci.lo, a.mean);
  EXPECT_GE(a.ci.hi, a.mean);
}

TEST(Bootstrap, CoverageOnKnownBernoulli) {
  // 95% intervals over 200 independent samples of Bernoulli(0.3), n = 100: coverage should be near
  // 0.95; a binomial 99.9% band for 200 trials is about [0.89, 0.99].
  const double p = 0.3;
  int covered = 0;
  const int trials = 200;
  for (int t = 0; t < trials; ++t) {
    const auto x = bernoulli(p, 100, 1000 + t);
    const auto e = sf::report::bootstrap_mean(x, {400, 0.95, static_cast<uint64_t>(t)});
    covered += e.ci.contains(p) ? 1 : 0;
  }
  const double coverage = static_cast<double>(covered) / trials;
  EXPECT_GT(coverage, 0.88);
  EXPECT_LE(coverage, 0.995);
}

TEST(Bootstrap, Quantile) {
  EXPECT_DOUBLE_EQ(sf::report::quantile({3, 1, 2}, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(sf::report::quantile({0, 10}, 0.25), 2.5);
  EXPECT_DOUBLE_EQ(sf::report::quantile({5}, 0.975), 5.0);
  EXPECT_THROW(sf::report::quantile({}, 0.5), sf::ShapeError);
}

TEST(Portion, DefinedWhenAlignedDiffersFromBase) {
  // Base solves 10%, aligned 60%, base+head 35% of the same 200 examples.
  std::vector<double> b(200, 0.0), a(200, 0.0), s(200, 0.0);
  for (size_t i = 0; i < 200; ++i) {
    b[i] = i % 10 == 0;
    a[i] = i % 10 < 6;
    s[i] = i % 20 < 7;
  }
  const auto p = sf::report::bootstrap_portion(b, a, s, {1000, 0.95, 7});
  ASSERT_TRUE(p.defined) << p.reason;
  EXPECT_NEAR(p.base.mean, 0.10, 1e-12);
  EXPECT_NEAR(p.aligned.mean, 0.60, 1e-12);
  EXPECT_NEAR(p.head.mean, 0.35, 1e-12);
  EXPECT_NEAR(p.value, 0.5, 1e-12);
  EXPECT_LT(p.ci.lo, 0.5);
  EXPECT_GT(p.ci.hi, 0.5);
  EXPECT_GT(p.ci.lo, 0.2);
  EXPECT_LT(p.ci.hi, 0.8);
  EXPECT_FALSE(p.diff_ci.contains(0.0));
  const auto again = sf::report::bootstrap_portion(b, a, s, {1000, 0.95, 7});
  EXPECT_EQ(again.ci.lo, p.ci.lo);
}

TEST(Portion, NotApplicableWithinNoise) {
  // Aligned equals base: the portion is undefined.
  std::vector<double> b(50), a(50), s(50);
  for (size_t i = 0; i < 50; ++i) b[i] = a[i] = s[i] = i % 3 == 0;
  auto p = sf::report::bootstrap_portion(b, a, s, {200, 0.95, 1});
  EXPECT_FALSE(p.defined);
  EXPECT_FALSE(p.reason.empty());
  // Aligned differs from base in 1 example of 50: the CI of A − B includes 0.
  a[1] = 1.0;
  p = sf::report::bootstrap_portion(b, a, s, {1000, 0.95, 1});
  EXPECT_NEAR(p.diff, 0.02, 1e-12);
  EXPECT_TRUE(p.diff_ci.contains(0.0));
  EXPECT_FALSE(p.defined);
}

TEST(Portion, RejectsMismatchedSystems) {
  EXPECT_THROW(sf::report::bootstrap_portion({1, 0}, {1}, {0, 0}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::bootstrap_portion({}, {}, {}, {100, 0.95, 1}), sf::ShapeError);
  EXPECT_THROW(sf::report::bootstrap_mean({1.0}, {5, 0.95, 1}), sf::ShapeError);
}

}  // namespace
