// The non-finite guard in the stages: a model (or judge) with one NaN weight stops extract,
// evaluate and judge with one error line naming the model, task, example, position and the first
// non-finite entry, and nothing of the unit is archived.
#include <gtest/gtest.h>

#include <limits>

#include "io/safetensors.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

// A copy of a model folder whose tensor `name` has a NaN first entry.
void copy_with_nan(const fs::path& from, const fs::path& to, const std::string& name) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    if (e.path().filename() != "model.safetensors") fs::copy_file(e.path(), to / e.path().filename());
  auto tensors = sf::io::read_safetensors(from / "model.safetensors");
  bool found = false;
  for (auto& [n, t] : tensors) {
    t = t.clone();
    if (n == name) {
      t.view({-1})[0] = std::numeric_limits<float>::quiet_NaN();
      found = true;
    }
  }
  ASSERT_TRUE(found) << name;
  sf::io::write_safetensors(to / "model.safetensors", tensors, {{"format", "pt"}});
}

class NonFinite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new sf::test::TempDir("e2e-non-finite");
    const auto r = sf::test::run_command("cd " + sf::test::source_dir().string() +
                                         " && SUPERFICIAL_BIN=" + sf::test::cli_path().string() +
                                         " bash scripts/make-tiny-pair.sh " + (*dir_ / "models").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    copy_with_nan(*dir_ / "models/base", *dir_ / "models/base-nan", "model.norm.weight");
    copy_with_nan(*dir_ / "models/aligned", *dir_ / "models/aligned-nan", "model.norm.weight");
    copy_with_nan(sf::test::fixtures_dir() / "judges/roberta", *dir_ / "models/roberta-nan",
                  "classifier.out_proj.bias");
  }
  static void TearDownTestSuite() { delete dir_; }

  // Runs a stage on jobs/tiny.yaml in run folder `run`, with these models and extra --set keys.
  static sf::test::CommandResult stage(const std::string& command, const std::string& run, const std::string& base,
                                       const std::string& aligned, const std::string& extra) {
    const std::string m = (*dir_ / "models").string() + "/";
    return sf::test::run_command(
        "cd " + sf::test::source_dir().string() + " && SUPERFICIAL_SCHEMA_DIR=results-schema " +
        sf::test::cli_path().string() + " " + command + " jobs/tiny.yaml --set run_dir=" + (*dir_ / run).string() +
        " --set data_root=" + (sf::test::shared_dir() / "data").string() + " --set models.tiny-base.path=" + m + base +
        " --set models.tiny-chat.path=" + m + aligned + " --set extract.max_examples=2" +
        " --set evaluate.max_examples=2 --set evaluate.max_new_tokens=4 --set 'evaluate.systems=[base]' " + extra);
  }

  // Exactly one error line, containing `want`.
  static void expect_error(const sf::test::CommandResult& r, const std::string& want) {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    const size_t at = r.output.find("superficial: error: ");
    ASSERT_NE(at, std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("superficial: error: ", at + 1), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(want, at), std::string::npos) << "expected: " << want << "\n" << r.output;
  }

  static sf::test::TempDir* dir_;
};

sf::test::TempDir* NonFinite::dir_ = nullptr;

TEST_F(NonFinite, ExtractStopsOnTheAlignedModelsGreedyStepsAndTheBaseModelsLogits) {
  auto r = stage("extract", "x1", "base", "aligned-nan", "--set 'tasks=[gsm8k]'");
  expect_error(r, "extract: model tiny-chat, task gsm8k, example 0, position 0: greedy step logits: entry 0 (token ");
  r = stage("extract", "x2", "base-nan", "aligned", "--set 'tasks=[gsm8k]'");
  expect_error(r, "extract: model tiny-base, task gsm8k, example 0, position 0: top-k logits: entry 0 (token ");
  // Nothing archived: no shard under a final name.
  for (const char* run : {"x1", "x2"})
    for (const auto& e : fs::recursive_directory_iterator(*dir_ / run))
      EXPECT_NE(e.path().extension(), ".h5") << e.path();
}

TEST_F(NonFinite, EvaluateStopsOnGeneratedAndScoredAnswers) {
  auto r = stage("evaluate", "e1", "base-nan", "aligned", "--set 'tasks=[gsm8k]'");
  expect_error(r,
               "evaluate: system base (model tiny-base), task gsm8k, example 0, position 0: generation step "
               "logits: entry 0 (token ");
  r = stage("evaluate", "e2", "base-nan", "aligned", "--set 'tasks=[truthfulqa]'");
  expect_error(r,
               "evaluate: system base (model tiny-base), task truthfulqa, example 0, position 0: answer "
               "log-likelihoods (position = answer index): value = nan");
  for (const char* run : {"e1", "e2"})
    for (const auto& e : fs::recursive_directory_iterator(*dir_ / run))
      EXPECT_NE(e.path().extension(), ".h5") << e.path();
}

TEST_F(NonFinite, JudgeStopsOnANaNJudge) {
  ASSERT_EQ(stage("evaluate", "j", "base", "aligned", "--set 'tasks=[toxigen]'").exit_code, 0);
  const std::string judge = (*dir_ / "models/roberta-nan").string();
  const auto r =
      stage("judge", "j", "base", "aligned", "--set 'tasks=[toxigen]' --set judges.toxigen_roberta.path=" + judge);
  expect_error(r, "judge: judge toxigen_roberta (model " + judge +
                      "), task toxigen, system base, example 0, position 0: per-label scores (position = label): "
                      "value = nan");
  EXPECT_FALSE(fs::exists(*dir_ / "j/judge/judgments.h5"));
}

}  // namespace
