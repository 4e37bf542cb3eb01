// Judge configuration: recipes in task files, bindings in jobs, and the checks made before any
// compute (labels the tokenizer cannot spell, prompt fields the task rows lack, a classifier whose
// classes disagree with the declared labels), each one line naming the file and key.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.hpp"
#include "eval/task.hpp"
#include "judge/judge.hpp"
#include "judge/kinds.hpp"
#include "judge/plan.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

fs::path fixtures() { return sf::test::fixtures_dir() / "judges"; }

const char* kTask = R"(name: qa
version: 1
test: {file: qa.csv, format: csv, field: q}
prompt: {user: "{input}"}
generation: {max_new_tokens: 4}
metric: {kind: judge}
judges:
  - name: truth
    kind: label_prob
    metric: truthful
    prompt: "Q: {question}\nA: {answer}\nRef: {reference} ({topic})\nTrue:"
    reference: best
    labels: [" yes", " no"]
    positive: " yes"
    trim: {whitespace: true, drop_prefix: ["Answer:"], cut_at: ["\n\n"]}
  - name: tox
    kind: classifier
    metric: toxicity
    labels: [benign, toxic]
    positive: toxic
  - metric: both
    all_of: [truth, tox]
)";

struct Fixture {
  sf::test::TempDir dir{"judge-plan"};
  std::vector<sf::eval::Task> tasks;
  std::vector<std::vector<sf::eval::Example>> examples;

  explicit Fixture(const std::string& task_yaml = kTask) {
    sf::test::write_file(dir / "qa.csv", "q,best,topic\nWhy?,Because.,science\nWho?,Nobody.,people\n");
    tasks.push_back(sf::eval::Task::parse(sf::ConfigNode::parse(task_yaml, "qa.yaml")));
    examples.push_back(tasks[0].examples(sf::eval::Split::kTest, dir.path()));
  }
  std::map<std::string, sf::judge::Binding> bindings(const std::string& yaml) const {
    return sf::judge::parse_job_judges(sf::ConfigNode::parse(yaml, "job.yaml").child("judges"));
  }
  sf::judge::Plan plan(const std::string& yaml) const { return sf::judge::make_plan(tasks, examples, bindings(yaml)); }
};

std::string llama() { return (fixtures() / "llama").string(); }
std::string roberta() { return (fixtures() / "roberta").string(); }

// The message of the ConfigError `f` throws (empty if none).
template <class F>
std::string config_error(F f) {
  try {
    f();
  } catch (const sf::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(JudgeSpec, TaskRecipesAndTrim) {
  const Fixture fx;
  const auto& j = fx.tasks[0].judging();
  ASSERT_EQ(j.judges.size(), 2u);
  EXPECT_EQ(j.judges[0].kind, sf::judge::Kind::kLabelProb);
  EXPECT_EQ(j.judges[0].positive_index(), 0u);
  EXPECT_EQ(j.judges[1].prompt, "{answer}");  // a classifier reads the answer by default
  ASSERT_EQ(j.all_of.size(), 1u);
  EXPECT_EQ(j.all_of[0].judges, (std::vector<std::string>{"truth", "tox"}));
  EXPECT_TRUE(fx.tasks[0].metric().score_names().empty());
  const auto& trim = j.judges[0].trim;
  EXPECT_EQ(trim.apply("  Answer:  Paris.\n\nQuestion: next"), "Paris.");
  EXPECT_EQ(trim.apply("Paris"), "Paris");
  EXPECT_EQ(sf::judge::prompt_fields("{a} {{b}} {c}{a}", "w"), (std::vector<std::string>{"a", "c"}));
  EXPECT_THROW(sf::judge::prompt_fields("{a", "w"), sf::ConfigError);
  EXPECT_THROW(sf::judge::prompt_fields("a}", "w"), sf::ConfigError);
  // The judges do not change what the task asks: they are not part of its answer-defining text.
  EXPECT_EQ(fx.tasks[0].definition_yaml().find("judges"), std::string::npos);
}

TEST(JudgeSpec, PromptsAreFilledFromTheRowTheQuestionAndTheTrimmedAnswer) {
  const Fixture fx;
  const auto& truth = fx.tasks[0].judging().judges[0];
  const auto& ex = fx.examples[0][1];
  const auto fields = sf::judge::judge_fields(truth, ex.fields, ex.input, " Answer: Nobody knows.\n\nQ: next");
  EXPECT_EQ(sf::judge::fill_prompt(truth, fields), "Q: Who?\nA: Nobody knows.\nRef: Nobody. (people)\nTrue:");
  const auto& tox = fx.tasks[0].judging().judges[1];
  EXPECT_EQ(sf::judge::fill_prompt(tox, sf::judge::judge_fields(tox, ex.fields, ex.input, " raw\n")), " raw\n");
}

TEST(JudgeSpec, StrictRecipes) {
  auto bad = [](const std::string& judges) {
    const std::string yaml = std::string(R"(name: t
version: 1
test: {file: x.csv, format: csv, field: q}
prompt: {user: "{input}"}
generation: {max_new_tokens: 4}
metric: {kind: judge}
)") + judges;
    EXPECT_THROW(sf::eval::Task::parse(sf::ConfigNode::parse(yaml, "t.yaml")), sf::ConfigError) << judges;
  };
  bad("");  // kind judge without judges
  bad("judges:\n  - {name: a, kind: label_prob, metric: m, prompt: x, labels: [' y', ' n'], positive: ' m'}\n");
  bad("judges:\n  - {name: a, kind: label_prob, metric: m, prompt: x, labels: [' y'], positive: ' y'}\n");
  bad("judges:\n  - {name: a, kind: label_prob, metric: m, prompt: x, labels: [' y', ' y'], positive: ' y'}\n");
  bad("judges:\n  - {name: a, kind: oracle, metric: m, prompt: x}\n");
  bad("judges:\n  - {name: a, kind: generate, metric: m, prompt: x, regex: '(a)(b)'}\n");
  bad("judges:\n  - {name: a, kind: generate, metric: m, prompt: x, regex: '(['}\n");
  bad("judges:\n  - {name: a, kind: generate, metric: m, prompt: x, regex: 'a', typo: 1}\n");
  bad("judges:\n  - {name: a, kind: classifier, metric: m, labels: [x, y], positive: y}\n  - {metric: n, all_of: "
      "[b]}\n");
  bad("judges:\n  - {name: a, kind: classifier, metric: m, labels: [x, y], positive: y}\n"
      "  - {name: a, kind: classifier, metric: n, labels: [x, y], positive: y}\n");
}

TEST(JudgeSpec, GenerateVerdicts) {
  sf::judge::Recipe r;
  r.kind = sf::judge::Kind::kGenerate;
  r.regex = "#(?:the)?score:\\s*([0-9]+)";
  r.positive_at_least = 5;
  auto v = sf::judge::GenerateJudge::parse(r, "#thereason: bad.\n#thescore: 5\n");
  EXPECT_EQ(v.score, 5);
  EXPECT_EQ(v.label, "positive");
  EXPECT_EQ(sf::judge::GenerateJudge::parse(r, "#score: 2").label, "negative");
  v = sf::judge::GenerateJudge::parse(r, "I will not score this.");
  EXPECT_FALSE(v.matched());
  EXPECT_TRUE(std::isnan(v.score));  // no match is recorded as such, never as a score
  EXPECT_EQ(v.text, "I will not score this.");
}

TEST(JudgePlan, BoundUnboundOptionalAndJobJudges) {
  const Fixture fx;
  // Nothing bound: both judges and the all_of are unscored, with notes.
  auto p = fx.plan("judges: {}\n");
  EXPECT_TRUE(p.judges.empty());
  ASSERT_EQ(p.metrics.size(), 3u);
  for (const auto& m : p.metrics) {
    EXPECT_EQ(m.status, "unscored");
    EXPECT_NE(m.note.find("bound to a model in the job"), std::string::npos) << m.note;
  }
  // Both bound.
  p = fx.plan("judges:\n  truth: {path: " + llama() + ", template: plain}\n  tox: {path: " + roberta() + "}\n");
  ASSERT_EQ(p.judges.size(), 2u);
  for (const auto& m : p.metrics) EXPECT_EQ(m.status, "scored") << m.metric;
  EXPECT_NE(p.judges[0].fingerprint, p.judges[1].fingerprint);
  // A judge the job declares adds a metric ...
  p = fx.plan("judges:\n  truth: {path: " + llama() + ", template: plain}\n  mine:\n    path: " + llama() +
              "\n    template: plain\n    tasks: [qa]\n    kind: label_prob\n    metric: fluent\n"
              "    prompt: '{answer} Fluent:'\n    labels: [' yes', ' no']\n    positive: ' yes'\n");
  ASSERT_EQ(p.judges.size(), 2u);
  EXPECT_EQ(p.judges[1].recipe.name, "mine");
  EXPECT_EQ(p.metrics.size(), 4u);
  // ... or replaces the task's judge of the same metric, but not one an all_of needs.
  EXPECT_NE(config_error([&] {
              fx.plan("judges:\n  truth: {path: " + llama() + ", template: plain}\n  mine:\n    path: " + llama() +
                      "\n    template: plain\n    tasks: [qa]\n    kind: label_prob\n    metric: toxicity\n"
                      "    prompt: '{answer}'\n    labels: [' yes', ' no']\n    positive: ' yes'\n");
            }).find("replaced"),
            std::string::npos);
  // Bindings nobody declared, or for tasks not evaluated, are errors.
  EXPECT_NE(
      config_error([&] { fx.plan("judges:\n  nobody: {path: " + llama() + ", template: plain}\n"); }).find("nobody"),
      std::string::npos);
  EXPECT_NE(config_error([&] {
              fx.plan("judges:\n  x:\n    path: " + llama() +
                      "\n    template: plain\n    tasks: [gsm8k]\n"
                      "    kind: label_prob\n    metric: t\n    prompt: '{answer}'\n    labels: [' a', ' b']\n"
                      "    positive: ' a'\n");
            }).find("gsm8k"),
            std::string::npos);
  // Templates: an LM judge needs one, a classifier takes none.
  EXPECT_NE(config_error([&] { fx.plan("judges:\n  truth: {path: " + llama() + "}\n"); }).find("template"),
            std::string::npos);
  EXPECT_NE(
      config_error([&] { fx.plan("judges:\n  tox: {path: " + roberta() + ", template: plain}\n"); }).find("template"),
      std::string::npos);
}

TEST(JudgePlan, OptionalJudgesAreOmitted) {
  std::string yaml = kTask;
  yaml.replace(yaml.find("    positive: toxic\n"), 19, "    positive: toxic\n    optional: true\n");
  const Fixture fx(yaml);
  const auto p = fx.plan("judges:\n  truth: {path: " + llama() + ", template: plain}\n");
  ASSERT_EQ(p.metrics.size(), 3u);
  EXPECT_EQ(p.metrics[0].status, "scored");
  EXPECT_EQ(p.metrics[1].status, "omitted");
  EXPECT_EQ(p.metrics[2].status, "omitted");
}

// The three errors the issue names, before any compute, one line each.
TEST(JudgePlan, FailsBeforeComputeWithOneLine) {
  const Fixture fx;
  // 1. A label the judge's tokenizer cannot spell (a BPE without byte fallback: unknown characters
  //    become <unk>).
  sf::test::TempDir judge_dir("judge-nolabel");
  fs::copy_file(fixtures() / "llama" / "config.json", judge_dir / "config.json");
  fs::copy_file(fixtures() / "llama" / "model.safetensors", judge_dir / "model.safetensors");
  sf::test::write_file(judge_dir / "tokenizer.json", R"J({"version": "1.0", "added_tokens": [],
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    "pre_tokenizer": null, "post_processor": null, "decoder": {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": false,
              "vocab": {"<unk>": 0, "\u2581": 1, "y": 2, "e": 3, "s": 4, "n": 5, "o": 6, "Q": 7, ":": 8, "x": 9, "A": 10,
                        "R": 11, "f": 12, "(": 13, ")": 14, "T": 15, "r": 16, "u": 17, "\n": 18},
              "merges": []}})J");
  // Its characters spell " yes" and " no" ...
  std::string msg =
      config_error([&] { fx.plan("judges:\n  truth: {path: " + judge_dir.path().string() + ", template: plain}\n"); });
  EXPECT_EQ(msg, "");
  // ... but not " woo".
  std::string yaml = kTask;
  const std::string labels = "[\" yes\", \" no\"]";
  yaml.replace(yaml.find(labels), labels.size(), "[\" yes\", \" woo\"]");
  const Fixture fx1(yaml);
  msg =
      config_error([&] { fx1.plan("judges:\n  truth: {path: " + judge_dir.path().string() + ", template: plain}\n"); });
  EXPECT_NE(msg.find("label \" woo\" is not in the tokenizer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qa.yaml"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  // 2. A prompt field the task's rows do not have.
  yaml = kTask;
  yaml.replace(yaml.find("({topic})"), 9, "({sport})");
  const Fixture fx2(yaml);
  msg = config_error([&] { fx2.plan("judges:\n  truth: {path: " + llama() + ", template: plain}\n"); });
  EXPECT_NE(msg.find("field 'sport' is not in the rows of task 'qa'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  // 3. A classifier whose number of classes differs from the declared labels.
  yaml = kTask;
  yaml.replace(yaml.find("[benign, toxic]"), 15, "[benign, toxic, severe]");
  const Fixture fx3(yaml);
  msg = config_error([&] { fx3.plan("judges:\n  tox: {path: " + roberta() + "}\n"); });
  EXPECT_NE(msg.find("num_labels 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("declares 3 labels"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(JudgePlan, HeldoutRowsAreChecked) {
  const Fixture fx;
  sf::test::TempDir dir("judge-heldout");
  sf::test::write_file(
      dir / "ok.jsonl",
      "{\"question\": \"q\", \"answer\": \"a\", \"reference\": \"r\", \"topic\": \"t\", \"label\": \" no\"}\n");
  auto p = fx.plan("judges:\n  truth: {path: " + llama() +
                   ", template: plain, heldout: " + (dir / "ok.jsonl").string() + "}\n");
  ASSERT_EQ(p.judges.size(), 1u);
  EXPECT_EQ(p.judges[0].heldout.size(), 1u);
  EXPECT_FALSE(p.judges[0].heldout_sha256.empty());
  sf::test::write_file(
      dir / "bad_label.jsonl",
      "{\"question\": \"q\", \"answer\": \"a\", \"reference\": \"r\", \"topic\": \"t\", \"label\": \"no\"}\n");
  EXPECT_NE(config_error([&] {
              fx.plan("judges:\n  truth: {path: " + llama() +
                      ", template: plain, heldout: " + (dir / "bad_label.jsonl").string() + "}\n");
            }).find("not one of the judge's labels"),
            std::string::npos);
  sf::test::write_file(dir / "no_field.jsonl", "{\"question\": \"q\", \"answer\": \"a\", \"label\": \" no\"}\n");
  EXPECT_NE(config_error([&] {
              fx.plan("judges:\n  truth: {path: " + llama() +
                      ", template: plain, heldout: " + (dir / "no_field.jsonl").string() + "}\n");
            }).find("field 'reference'"),
            std::string::npos);
}

}  // namespace
