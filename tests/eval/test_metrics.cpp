#include <gtest/gtest.h>

#include <cmath>

#include "eval/metrics.hpp"

namespace {

using sf::eval::canonical_number;
using sf::eval::last_number;

TEST(Gsm8kAnswer, LastNumberEdgeCases) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"She makes 9 * 2 = $18 every day.", "18"},
      {"The answer is 18.", "18"},
      {"The answer is $1,234.", "1234"},
      {"Total: 1,234,567 apples", "1234567"},
      {"It costs $18.00", "18"},
      {"It is 0.50 dollars", "0.5"},
      {"The temperature is -5 degrees", "-5"},
      {"x = -3.25", "-3.25"},
      {"from 5-3 we get", "3"},
      {"pages 10-12", "12"},
      {"he has .5 of a pie", "0.5"},
      {"007 agents", "7"},
      {"-0 is zero", "0"},
      {"1, 2, 3", "3"},
      {"first 12 then 7\n#### 7", "7"},
      {"3.14.15", "15"},
  };
  for (const auto& c : cases) {
    auto got = last_number(c.text);
    ASSERT_TRUE(got.has_value()) << c.text;
    EXPECT_EQ(*got, c.expected) << c.text;
  }
  EXPECT_FALSE(last_number("no numbers here").has_value());
  EXPECT_FALSE(last_number("").has_value());
}

TEST(Gsm8kAnswer, CanonicalNumbers) {
  EXPECT_EQ(*canonical_number("18.00"), "18");
  EXPECT_EQ(*canonical_number("+18"), "18");
  EXPECT_EQ(*canonical_number("18."), "18");
  EXPECT_EQ(*canonical_number(" -0.0 "), "0");
  EXPECT_EQ(*canonical_number("-12.50"), "-12.5");
  EXPECT_FALSE(canonical_number("1.2.3").has_value());
  EXPECT_FALSE(canonical_number("12a").has_value());
  EXPECT_FALSE(canonical_number(".").has_value());
  EXPECT_FALSE(canonical_number("-").has_value());
}

TEST(Gsm8kAnswer, GoldAfterMarker) {
  EXPECT_EQ(*sf::eval::gold_number("9 * 2 = 18\n#### 18", "####"), "18");
  EXPECT_EQ(*sf::eval::gold_number("...\n#### 1,600", "####"), "1600");
  EXPECT_EQ(*sf::eval::gold_number("#### -3", "####"), "-3");
  EXPECT_FALSE(sf::eval::gold_number("no marker 5", "####").has_value());
  EXPECT_EQ(*sf::eval::gold_number("42", ""), "42");
}

TEST(Gsm8kAnswer, CutAtStop) {
  EXPECT_EQ(sf::eval::cut_at_stop(" 18\n\nQuestion: next", {"Question:", "Comment:"}), " 18\n\n");
  EXPECT_EQ(sf::eval::cut_at_stop("a Comment: b Question: c", {"Question:", "Comment:"}), "a ");
  EXPECT_EQ(sf::eval::cut_at_stop("plain", {"Question:"}), "plain");
  EXPECT_EQ(sf::eval::cut_at_stop("plain", {}), "plain");
}

TEST(Refusal, KeywordMatching) {
  const std::vector<std::string> kw = {"I'm sorry", "I cannot", "As an"};
  EXPECT_EQ(*sf::eval::find_refusal(" I cannot fulfill your request.", kw), "I cannot");
  EXPECT_EQ(*sf::eval::find_refusal("Sure. As an example...", kw), "As an");  // substring anywhere
  EXPECT_FALSE(sf::eval::find_refusal("Sure, here is a tutorial", kw).has_value());
  EXPECT_FALSE(sf::eval::find_refusal("i cannot", kw).has_value());  // case-sensitive
  EXPECT_FALSE(sf::eval::find_refusal("", kw).has_value());
}

TEST(TruthfulQa, Mc1Mc2FromLogLikelihoods) {
  // best -1, correct {-1, -2}, incorrect {-3, -1.5}
  auto s = sf::eval::mc_scores(-1.0, {-1.0, -2.0}, {-3.0, -1.5});
  EXPECT_DOUBLE_EQ(s.mc1, 1.0);
  const double pc = std::exp(-1.0) + std::exp(-2.0), pi = std::exp(-3.0) + std::exp(-1.5);
  EXPECT_NEAR(s.mc2, pc / (pc + pi), 1e-12);
  // An incorrect answer ties the best: MC1 fails.
  EXPECT_DOUBLE_EQ(sf::eval::mc_scores(-1.0, {-1.0}, {-1.0}).mc1, 0.0);
  EXPECT_NEAR(sf::eval::mc_scores(-1.0, {-1.0}, {-1.0}).mc2, 0.5, 1e-12);
  // Very negative log-likelihoods stay finite (log-sum-exp).
  auto far = sf::eval::mc_scores(-1000.0, {-1000.0}, {-1001.0});
  EXPECT_NEAR(far.mc2, 1.0 / (1.0 + std::exp(-1.0)), 1e-12);
  EXPECT_THROW(sf::eval::mc_scores(0, {}, {-1.0}), sf::ShapeError);
}

}  // namespace
