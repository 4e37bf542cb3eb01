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

json schema() { return json::parse(sf::test::read_file(sf::test::source_dir() / "results-schema/summary-v1.json")); }

Summary example_summary() {
  Summary s;
  s.provenance = {{"tool_version", "0.1.0"},
                  {"git_sha", "abc"},
                  {"run_dir", "runs/x"},
                  {"created", "2025-01-01T00:00:00Z"},
                  {"model_base", "runs/m/compromised"}};
  s.bootstrap = {1000, 0.95, 7};
  s.systems = {"base", "aligned", "base+hidden"};
  MetricSummary m;
  m.task = "gsm8k";
  m.metric = "accuracy";
  m.examples = 100;
  m.systems = {{"base", {100, 0.04, {0.01, 0.08}, "clopper-pearson"}},
               {"aligned", {100, 0.23, {0.15, 0.31}, "clopper-pearson"}},
               {"base+hidden", {100, 0.14, {0.08, 0.21}, "clopper-pearson"}}};
  m.portions = {{"base+hidden", true, 0.53, {0.3, 0.8}, 0.19, {0.1, 0.28}, ""}};
  s.metrics.push_back(m);
  MetricSummary same = m;
  same.task = "advbench";
  same.metric = "harm_rate";
  same.portions = {{"base+hidden", false, 0, {}, 0.0, {-0.02, 0.02}, "aligned - base is within noise"}};
  s.metrics.push_back(same);
  MetricSummary tox;
  tox.task = "toxigen";
  tox.metric = "toxicity";
  tox.scored = false;
  tox.examples = 10;
  s.metrics.push_back(tox);
  s.kl.push_back({"base+hidden", 20, {5, 5, 4}, {2.0, 1.5, 1.0}, {0.5, 0.4, 0.3}});
  s.head_tokens.push_back({"base+hidden", {{29871, "▁I", 1.5}}, {{13, "<0x0A>", -0.7}}});
  s.training.push_back({"base", "runs/m/base", "pretrain", {1, 2, 3}, {10.5, 7.25, 4.125}});
  s.notes = {"toxigen/toxicity: unscored"};
  return s;
}

TEST(Summary, JsonFollowsSchema) {
  const json j = to_json(example_summary());
  const auto problems = check_json(j, schema());
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(j["metrics"][1]["portions"][0]["status"], "n/a");
  EXPECT_TRUE(j["metrics"][1]["portions"][0]["value"].is_null());
  EXPECT_EQ(j["metrics"][2]["status"], "unscored");
  EXPECT_TRUE(j["metrics"][2]["systems"].empty());
}

TEST(Summary, SchemaRejectsBrokenDocuments) {
  json j = to_json(example_summary());
  j["metrics"][0]["status"] = "maybe";
  j["bootstrap"].erase("seed");
  j["extra"] = 1;
  j["kl"][0]["positions"][0]["count"] = "five";
  j["training"][0]["loss"][1] = "low";
  const auto problems = check_json(j, schema());
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_NE(problems[0].find("$.bootstrap"), std::string::npos) << problems[0];
  EXPECT_THROW(check_json(json::object(), json{{"type", "object"}, {"patternProperties", json::object()}}),
               sf::FormatError);
}

TEST(Summary, MarkdownAndHtml) {
  const Summary s = example_summary();
  const std::string md = to_markdown(s);
  EXPECT_NE(md.find("| gsm8k | accuracy | 100 | 0.040 [0.010, 0.080] | 0.230 [0.150, 0.310] | 0.140 [0.080, 0.210] | "
                    "0.53 [0.30, 0.80] |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| advbench | harm_rate | 100 |"), std::string::npos);
  EXPECT_NE(md.find("Model `base`: `runs/m/compromised`"), std::string::npos) << md;
  EXPECT_NE(md.find("n/a"), std::string::npos);
  EXPECT_NE(md.find("unscored"), std::string::npos);
  const std::string html = to_html(s);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;0x0A&gt;"), std::string::npos);  // token text is escaped
  // The training loss curve: a table row in markdown, a chart in HTML.
  EXPECT_NE(md.find("| base | `runs/m/base` | pretrain | 3 | 10.5000 | 4.1250 |"), std::string::npos) << md;
  EXPECT_NE(html.find("<title>Training loss of base</title>"), std::string::npos);
}

}  // namespace
