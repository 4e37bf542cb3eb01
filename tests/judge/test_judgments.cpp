// judgments.h5: round trip, the schema and semantic checks of `validate`, and what reduce reads.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "judge/judgments.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json judges_attr() {
  return json::array({{{"task", "qa"},
                       {"name", "truth"},
                       {"kind", "label_prob"},
                       {"metric", "truthful"},
                       {"labels", {" yes", " no"}},
                       {"path", "/m/truth"},
                       {"heldout", {{"file", "h.jsonl"}, {"items", 2}, {"correct", 1}, {"accuracy", 0.5}}}},
                      {{"task", "qa"},
                       {"name", "policy"},
                       {"kind", "generate"},
                       {"metric", "harm"},
                       {"labels", json::array()},
                       {"path", "/m/policy"},
                       {"heldout", nullptr}}});
}

json metrics_attr() {
  return json::array({{{"task", "qa"},
                       {"metric", "truthful"},
                       {"kind", "judge"},
                       {"judges", {"truth"}},
                       {"status", "scored"},
                       {"note", ""}},
                      {{"task", "qa"},
                       {"metric", "harm"},
                       {"kind", "judge"},
                       {"judges", {"policy"}},
                       {"status", "scored"},
                       {"note", ""}},
                      {{"task", "qa"},
                       {"metric", "both"},
                       {"kind", "all_of"},
                       {"judges", {"truth", "policy"}},
                       {"status", "scored"},
                       {"note", ""}},
                      {{"task", "qa"},
                       {"metric", "informative"},
                       {"kind", "judge"},
                       {"judges", {"info"}},
                       {"status", "unscored"},
                       {"note", "qa/informative: unscored: judge 'info' is not bound"}}});
}

sf::judge::Judgment verdict(const std::string& judge, const std::string& metric, int64_t example, double value) {
  sf::judge::Judgment j;
  j.task = "qa";
  j.system = "base";
  j.judge = judge;
  j.metric = metric;
  j.example_id = example;
  j.results_row = example;
  j.value = value;
  j.input = "Q: ?";
  return j;
}

void write(const fs::path& path, const std::vector<sf::judge::Judgment>& rows,
           const std::vector<sf::judge::HeldoutJudgment>& heldout, json judges = judges_attr()) {
  sf::judge::JudgmentsWriter w(path, {{"schema", "judgments"},
                                      {"schema_version", sf::judge::kJudgmentsVersion},
                                      {"kind", "merged"},
                                      {"tool_version", "test"},
                                      {"git_sha", "test"},
                                      {"job_config", "run_dir: x"},
                                      {"results_fingerprint", "f"},
                                      {"created", "now"},
                                      {"plan_fingerprint", "p"},
                                      {"judges", judges},
                                      {"metrics", metrics_attr()},
                                      {"num_units", 3}});
  w.append(rows, heldout);
  w.close();
}

std::vector<sf::judge::Judgment> sample_rows() {
  auto t0 = verdict("truth", "truthful", 0, 1.0);
  t0.label = " yes";
  t0.score = 0.8;
  t0.label_names = {" yes", " no"};
  t0.raw = {-0.2231, -1.6094};
  t0.prob = {0.8, 0.2};
  auto t1 = t0;
  t1.example_id = t1.results_row = 1;
  t1.label = " no";
  t1.value = 0.0;
  t1.score = 0.3;
  t1.prob = {0.3, 0.7};
  auto p0 = verdict("policy", "harm", 0, 5.0);
  p0.label = "positive";
  p0.score = 5;
  p0.text = "#thescore: 5";
  auto p1 = verdict("policy", "harm", 1, std::nan(""));
  p1.label = "no_match";
  p1.text = "I refuse to score.";
  auto b0 = verdict("truth&policy", "both", 0, 1.0);
  b0.label = "positive";
  auto b1 = verdict("truth&policy", "both", 1, std::nan(""));
  b1.label = "no_match";
  return {t0, t1, p0, p1, b0, b1};
}

TEST(Judgments, RoundTripValidateAndReduceView) {
  sf::test::TempDir dir("judgments");
  const fs::path run = dir.path();
  fs::create_directories(run / "judge");
  const fs::path file = run / "judge" / "judgments.h5";
  EXPECT_FALSE(sf::judge::read_judged_scores(run).present);
  const auto rows = sample_rows();
  write(file, rows, {{"qa", "truth", " yes", " yes", 0, 0.9}, {"qa", "truth", " no", " yes", 1, 0.6}});

  const auto f = sf::judge::read_judgments(file);
  ASSERT_EQ(f.rows.size(), rows.size());
  EXPECT_EQ(f.rows[1].prob, rows[1].prob);
  EXPECT_EQ(f.rows[1].label_names, rows[1].label_names);
  EXPECT_EQ(f.rows[2].text, "#thescore: 5");
  EXPECT_TRUE(std::isnan(f.rows[3].value));
  ASSERT_EQ(f.heldout.size(), 2u);
  EXPECT_TRUE(f.heldout[0].correct());
  EXPECT_FALSE(f.heldout[1].correct());

  EXPECT_EQ(sf::h5::validate_file(file), std::vector<std::string>{});
  EXPECT_EQ(sf::judge::check_judgments(file), std::vector<std::string>{});

  const auto s = sf::judge::read_judged_scores(run);
  EXPECT_TRUE(s.present);
  ASSERT_EQ(s.scores.size(), 4u);  // the two no_match rows carry no score
  EXPECT_EQ(s.scores[0].judge, "truth");
  ASSERT_TRUE(s.scores[0].judge_accuracy.has_value());
  EXPECT_DOUBLE_EQ(*s.scores[0].judge_accuracy, 0.5);
  EXPECT_EQ(s.scores[2].metric, "harm");
  EXPECT_DOUBLE_EQ(s.scores[2].value, 5.0);
  EXPECT_FALSE(s.scores[2].judge_accuracy.has_value());
  EXPECT_EQ(s.scores[3].judge, "truth&policy");
  ASSERT_EQ(s.metrics.size(), 4u);
  EXPECT_NE(s.metrics[0].note.find("held-out accuracy 0.500 on 2 items"), std::string::npos) << s.metrics[0].note;
  EXPECT_NE(s.metrics[1].note.find("accuracy not measured"), std::string::npos) << s.metrics[1].note;
  EXPECT_EQ(s.metrics[1].no_match, 1);
  EXPECT_NE(s.metrics[1].note.find("1 verdicts without a number"), std::string::npos) << s.metrics[1].note;
  EXPECT_NE(s.metrics[2].note.find("truth (label_prob"), std::string::npos) << s.metrics[2].note;
  EXPECT_NE(s.metrics[2].note.find(" and policy (generate"), std::string::npos) << s.metrics[2].note;
  EXPECT_EQ(s.metrics[3].status, "unscored");
  EXPECT_NE(s.metrics[3].note.find("not bound"), std::string::npos);
}

TEST(Judgments, ValidateFindsInconsistentRows) {
  sf::test::TempDir dir("judgments-bad");
  auto rows = sample_rows();
  rows[0].prob = {0.8, 0.8};              // does not sum to 1
  rows[1].label_names = {" no", " yes"};  // other labels than declared
  rows[2].judge = "ghost";                // not in the judges attribute
  write(dir / "bad.h5", rows, {{"qa", "nobody", " yes", " yes", 0, 0.9}});
  const auto problems = sf::judge::check_judgments(dir / "bad.h5");
  ASSERT_EQ(problems.size(), 4u);
  EXPECT_NE(problems[0].find("verdicts row 0: probabilities do not sum to 1"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("verdicts row 1: labels differ"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find("verdicts row 2: judge 'ghost'"), std::string::npos) << problems[2];
  EXPECT_NE(problems[3].find("heldout row 0: judge 'nobody'"), std::string::npos) << problems[3];

  // An offset out of bounds is reported, not followed.
  const fs::path broken = dir / "broken.h5";
  {
    sf::judge::JudgmentsWriter w(broken, {{"schema", "judgments"},
                                          {"schema_version", 1},
                                          {"kind", "chunk"},
                                          {"tool_version", "t"},
                                          {"git_sha", "g"},
                                          {"job_config", "x"},
                                          {"results_fingerprint", "f"},
                                          {"judges", judges_attr()}});
    w.append({}, {});
    w.close();
  }
  {
    auto f = sf::h5::File::open(broken, true);
    const auto v = f.group("verdicts");
    for (const char* n : {"task", "system", "judge", "metric", "label", "text", "input"})
      v.dataset(n).append_strings({"x"});
    for (const char* n : {"example_id", "results_row", "num_labels"}) v.dataset(n).append(torch::tensor({int64_t{2}}));
    v.dataset("label_offset").append(torch::tensor({int64_t{7}}));
    for (const char* n : {"score", "value"}) v.dataset(n).append(torch::tensor({0.5}, torch::kFloat64));
  }
  const auto p = sf::judge::check_judgments(broken);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("labels [7, +2) out of bounds"), std::string::npos) << p[0];
  EXPECT_THROW(sf::judge::read_judgments(broken), sf::FormatError);
}

TEST(Judgments, OtherSchemaVersionsAreRefused) {
  sf::test::TempDir dir("judgments-version");
  {
    sf::judge::JudgmentsWriter w(dir / "v2.h5", {{"schema", "judgments"}, {"schema_version", 2}, {"kind", "merged"}});
    w.close();
  }
  try {
    sf::judge::read_judgments(dir / "v2.h5");
    FAIL() << "expected FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("version 2; this build reads version 1"), std::string::npos) << e.what();
  }
}

}  // namespace
