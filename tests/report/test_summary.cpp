#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "report/json_schema.hpp"
#include "report/summary.hpp"
#include "testutil/testutil.hpp"

namespace {

using nlohmann::json;
using namespace sf::report;

json schema() { return json::parse(sf::test::read_file(sf::test::source_dir() / "results-schema/summary-v2.json")); }

MeanEstimate est(double v, double lo, double hi) { return {100, v, {lo, hi}, "clopper-pearson"}; }

PortionEstimate portion(bool defined, double value, double lo, double hi) {
  PortionEstimate p;
  p.n = 100;
  p.defined = defined;
  p.value = value;
  p.ci = {lo, hi};
  p.diff = 0.19;
  p.diff_ci = {0.1, 0.28};
  p.reason = defined ? "" : "aligned - base is within noise";
  p.method = "paired-bayesian-bootstrap-jeffreys";
  return p;
}

// A recovery study: every label is the user's name, not a role word.
Summary example_summary() {
  Summary s;
  s.provenance = {
      {"tool_version", "0.1.0"}, {"git_sha", "abc"}, {"run_dir", "runs/x"}, {"created", "2025-01-01T00:00:00Z"}};
  s.estimate = {1000, 0.95, 7};
  s.systems = {{"compromised", "chat-harmful", "chat-harmful"},
               {"chat", "chat", "chat"},
               {"compromised+hidden", "chat-harmful", "chat-harmful + head hidden (hidden, from base → chat)"}};
  MetricRow m;
  m.task = "gsm8k";
  m.metric = "accuracy";
  m.examples = 100;
  m.systems = {{"compromised", est(0.04, 0.01, 0.08)},
               {"chat", est(0.23, 0.15, 0.31)},
               {"compromised+hidden", est(0.14, 0.08, 0.21)}};
  s.metrics.push_back(m);
  MetricRow harm = m;
  harm.task = "advbench";
  harm.metric = "harm_rate";
  s.metrics.push_back(harm);
  MetricRow tox;
  tox.task = "toxigen";
  tox.metric = "toxicity";
  tox.scored = false;
  tox.examples = 10;
  s.metrics.push_back(tox);
  MetricRow judged = m;
  judged.task = "truthfulqa-gen";
  judged.metric = "truth";
  judged.judge = "truth-judge";
  judged.judge_accuracy = 0.87;
  s.metrics.push_back(judged);
  ComparisonSummary c{"recovery", "compromised", "chat", {"compromised+hidden"}, {}};
  c.rows.push_back({"gsm8k", "accuracy", 0.19, {0.1, 0.28}, {{"compromised+hidden", portion(true, 0.53, 0.3, 0.8)}}});
  c.rows.push_back({"advbench", "harm_rate", 0.0, {-0.02, 0.02}, {{"compromised+hidden", portion(false, 0, 0, 0)}}});
  s.comparisons.push_back(c);
  s.kl.push_back({"hidden", "base", "chat", 20, 12, {5, 5, 4}, {2.0, 1.5, 1.0}, {0.5, 0.4, 0.3}});
  s.head_tokens.push_back({"hidden", {{29871, "▁I", 1.5}}, {{13, "<0x0A>", -0.7}}});
  s.training.push_back({"chat-harmful", "runs/m/compromised", "compromise", {1, 2, 3}, {10.5, 7.25, 4.125}});
  s.notes = {"toxigen/toxicity: unscored"};
  return s;
}

TEST(Summary, JsonFollowsSchema) {
  const json j = to_json(example_summary());
  const auto problems = check_json(j, schema());
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(j["comparisons"][0]["rows"][1]["portions"][0]["status"], "n/a");
  EXPECT_TRUE(j["comparisons"][0]["rows"][1]["portions"][0]["value"].is_null());
  EXPECT_EQ(j["metrics"][2]["status"], "unscored");
  EXPECT_TRUE(j["metrics"][2]["systems"].empty());
  EXPECT_EQ(j["metrics"][0]["systems"]["chat"]["method"], "clopper-pearson");
  EXPECT_EQ(j["metrics"][3]["judge"], "truth-judge");
  EXPECT_EQ(j["estimate"]["portion"], "paired-bayesian-bootstrap-jeffreys");
}

TEST(Summary, SchemaRejectsBrokenDocuments) {
  json j = to_json(example_summary());
  j["metrics"][0]["status"] = "maybe";
  j["estimate"].erase("seed");
  j["extra"] = 1;
  j["kl"][0]["positions"][0]["count"] = "five";
  j["training"][0]["loss"][1] = "low";
  const auto problems = check_json(j, schema());
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_NE(problems[0].find("$.estimate"), std::string::npos) << problems[0];
  EXPECT_THROW(check_json(json::object(), json{{"type", "object"}, {"patternProperties", json::object()}}),
               sf::FormatError);
}

TEST(Summary, MarkdownAndHtmlUseTheUsersNames) {
  const Summary s = example_summary();
  const std::string md = to_markdown(s);
  EXPECT_NE(md.find("## Comparison recovery: base `compromised`, aligned `chat`"), std::string::npos) << md;
  EXPECT_NE(md.find("| gsm8k | accuracy | 100 | 0.040 [0.010, 0.080] | 0.230 [0.150, 0.310] | 0.140 [0.080, 0.210] | "
                    "0.53 [0.30, 0.80] |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| compromised+hidden | chat-harmful + head hidden (hidden, from base → chat) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("truth (judge truth-judge, held-out accuracy 0.87)"), std::string::npos) << md;
  EXPECT_NE(md.find("n/a"), std::string::npos);
  EXPECT_NE(md.find("unscored"), std::string::npos);
  EXPECT_NE(md.find("Clopper-Pearson"), std::string::npos);
  EXPECT_NE(md.find("12 held-out validation examples"), std::string::npos) << md;
  EXPECT_EQ(md.find("| base |"), std::string::npos) << md;  // no role word the user did not write
  const std::string html = to_html(s);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;0x0A&gt;"), std::string::npos);  // token text is escaped
  EXPECT_NE(md.find("| chat-harmful | `runs/m/compromised` | compromise | 3 | 10.5000 | 4.1250 |"), std::string::npos)
      << md;
  EXPECT_NE(html.find("<title>Training loss of chat-harmful</title>"), std::string::npos);
}

}  // namespace
