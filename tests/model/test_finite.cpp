// The non-finite guard (model/finite.hpp): the first NaN/Inf entry is found and named; what the
// guard relies on (NaN and +Inf anywhere in a logit row reach the top-k and the log-softmax) holds;
// `score` and `generate` exit non-zero on a model with one NaN weight.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "model/finite.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Finite, FindsTheFirstNonFiniteEntry) {
  torch::Tensor t = torch::randn({6, 9});
  EXPECT_FALSE(sf::model::first_non_finite(t).has_value());
  t[4][2] = kInf;
  t[3][7] = kNaN;
  const auto bad = sf::model::first_non_finite(t);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->row, 3);
  EXPECT_EQ(bad->column, 7);
  EXPECT_TRUE(std::isnan(bad->value));
  const auto neg = sf::model::first_non_finite(torch::tensor({1.0, -kInf}, torch::kFloat64));
  ASSERT_TRUE(neg.has_value());
  EXPECT_EQ(neg->row, 1);
  EXPECT_EQ(sf::model::non_finite_text(neg->value), "-inf");
  torch::Tensor half = torch::ones({2, 3}, torch::kBFloat16);
  half[1][1] = kInf;
  EXPECT_EQ(sf::model::first_non_finite(half)->column, 1);
  // Large finite values whose sum overflows are not reported.
  EXPECT_FALSE(sf::model::first_non_finite(torch::full({4, 4}, 3e38, torch::kFloat32)).has_value());
  EXPECT_FALSE(sf::model::first_non_finite(torch::full({300}, 60000.0, torch::kFloat16)).has_value());
  EXPECT_FALSE(sf::model::first_non_finite(torch::zeros({0, 5})).has_value());
  EXPECT_FALSE(sf::model::first_non_finite(torch::Tensor()).has_value());
}

TEST(Finite, MessageNamesWhereWhatPositionAndToken) {
  torch::Tensor logits = torch::randn({5, 3});
  logits[2][1] = kNaN;
  const torch::Tensor ids = torch::arange(15, torch::kLong).reshape({5, 3}) + 100;
  try {
    sf::model::require_finite(logits, {"evaluate: system s (model m), task t, example 7", "step logits", 10, ids});
    FAIL() << "no error";
  } catch (const sf::NumericError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("evaluate: system s (model m), task t, example 7, position 12: step logits: entry 1 "
                     "(token 107) = nan"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
}

// What the stages' checks rely on: a NaN or +Inf anywhere in a row reaches its top-k and argmax
// (which the greedy steps and stored logits are) and its log-softmax (the scored log-probabilities).
TEST(Finite, NonFiniteEntriesReachTopKArgmaxAndLogSoftmax) {
  for (double bad : {kNaN, kInf}) {
    for (int64_t at : {0, 17, 99}) {
      torch::Tensor row = torch::randn({100});
      row[at] = bad;
      const auto [values, index] = row.topk(5);
      EXPECT_TRUE(sf::model::first_non_finite(values).has_value()) << bad << " at " << at;
      EXPECT_EQ(row.argmax().item<int64_t>(), at);
      EXPECT_TRUE(sf::model::first_non_finite(torch::log_softmax(row, 0)).has_value());
    }
  }
}

// A copy of a fixture model with one NaN weight (the final norm's first entry).
fs::path nan_model(const fs::path& dir) {
  const fs::path src = sf::test::fixtures_dir() / "models" / "llama_tied";
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json");
  auto tensors = sf::io::read_safetensors(src / "model.safetensors");
  for (auto& [name, t] : tensors) {
    t = t.clone();
    if (name == "model.norm.weight") t[0] = kNaN;
  }
  sf::io::write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  return dir;
}

TEST(Finite, ScoreAndGenerateExitNonZeroOnANaNWeight) {
  sf::test::TempDir dir("finite-cli");
  const std::string model = nan_model(dir / "nan").string();
  const std::string cli = sf::test::cli_path().string();
  auto r = sf::test::run_command(cli + " score --model " + model + " --ids '1 5 9 11'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("superficial: error: score: model " + model + ", position 1: log-probability: value = nan"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("position\tid"), std::string::npos) << "a table was printed: " << r.output;
  r = sf::test::run_command(cli + " generate --model " + model + " --ids '1 5 9' --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("superficial: error: generate: model " + model + ", position 0: step logits: entry 0"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  // The same model without the NaN scores normally.
  r = sf::test::run_command(cli + " score --model " + (sf::test::fixtures_dir() / "models" / "llama_tied").string() +
                            " --ids '1 5 9 11'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
