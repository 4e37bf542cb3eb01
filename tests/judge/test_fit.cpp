// A judge's input within its model's context (judge/fit.hpp): the positions an input needs per
// judge kind, `truncate: error` (one line naming the judge, the item and both sizes) and
// `truncate: answer` (the longest start of the answer that fits; the rest of the prompt whole; for
// a classifier reading "{answer}", the tokens transformers' truncation=True gives, as in the golden
// fixture).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "judge/fit.hpp"
#include "judge/kinds.hpp"
#include "model/model_files.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

fs::path fixtures() { return sf::test::fixtures_dir() / "judges"; }

// The job-declared judge `j` of `yaml_recipe` bound to the fixture model `model`.
sf::judge::Binding bind_judge(const std::string& model, const std::string& yaml_recipe) {
  const std::string yaml =
      "judges:\n  j: {path: " + (fixtures() / model).string() + ", tasks: [qa], " + yaml_recipe + "}\n";
  return sf::judge::parse_job_judges(sf::ConfigNode::parse(yaml, "job.yaml").child("judges")).at("j");
}

const char* kTruth =
    R"x(template: plain, kind: label_prob, metric: truthful, prompt: "Q: {question}\nA: {answer}\nTrue:", labels: [" yes", " no way"], positive: " yes")x";

std::string long_answer(int words) {
  std::string a;
  for (int i = 0; i < words; ++i) {
    if (i > 0) a += ' ';
    a += i % 2 ? "seeds" : "watermelon";
  }
  return a;
}

std::string shape_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const sf::ShapeError& e) {
    return e.what();
  }
  return "";
}

TEST(JudgeFit, PositionsPerKind) {
  const auto tok = sf::model::load_tokenizer(fixtures() / "llama");
  const std::string input = "Q: Why?\nA: No.\nTrue:";
  const auto rendered = sf::tok::ChatTemplate::preset("plain").prompt(input);  // as LabelProbJudge renders it
  const auto prompt_ids = tok.encode(rendered.text, rendered.add_special_tokens);
  // label_prob: the prompt, then the longest label (" no way" is more than one token here).
  const sf::judge::Binding truth = bind_judge("llama", kTruth);
  const sf::judge::InputFit lp(*truth.recipe, truth);
  const int64_t longest = static_cast<int64_t>(sf::judge::continuation_ids(tok, input, " no way").size());
  ASSERT_GT(longest, 1);
  EXPECT_EQ(lp.positions(input), static_cast<int64_t>(prompt_ids.size()) + longest);
  EXPECT_EQ(lp.max_positions(), 512);  // the fixture's max_position_embeddings
  // generate: the prompt, then max_new_tokens.
  const sf::judge::Binding gen = bind_judge(
      "llama",
      R"x(template: plain, kind: generate, metric: s, prompt: "{answer}", regex: "([0-9]+)", max_new_tokens: 7)x");
  EXPECT_EQ(sf::judge::InputFit(*gen.recipe, gen).positions(input), static_cast<int64_t>(prompt_ids.size()) + 7);
  // classifier: <s> + tokens + </s>, within max_position_embeddings - pad_token_id - 1.
  const sf::judge::Binding cls =
      bind_judge("roberta", "kind: classifier, metric: toxicity, labels: [benign, toxic], positive: toxic");
  const sf::judge::InputFit c(*cls.recipe, cls);
  const auto rtok = sf::model::load_tokenizer(fixtures() / "roberta");
  EXPECT_EQ(c.positions("they are all the same"),
            static_cast<int64_t>(rtok.encode("they are all the same", true).size()));
  EXPECT_EQ(c.max_positions(), 22);  // 24 - 1 - 1
}

TEST(JudgeFit, ErrorPolicyIsOneLineNamingJudgeItemAndSizes) {
  const sf::judge::Binding truth = bind_judge("llama", kTruth);
  const sf::judge::InputFit fit(*truth.recipe, truth);
  const std::map<std::string, std::string> fits = {{"question", "Why?"}, {"answer", "No."}};
  EXPECT_EQ(fit.fill(fits, "item").text, "Q: Why?\nA: No.\nTrue:");
  EXPECT_EQ(fit.fill(fits, "item").dropped_tokens, 0);
  const std::map<std::string, std::string> too_long = {{"question", "Why?"}, {"answer", long_answer(1000)}};
  const std::string e = shape_error([&] { fit.fill(too_long, "task qa, system base, example 7"); });
  ASSERT_FALSE(e.empty());
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  for (const std::string part : {"job.yaml: judges.j", "task qa, system base, example 7", "judge 'j'",
                                 "reads at most 512", "truncate: error", "positions"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
}

TEST(JudgeFit, AnswerPolicyKeepsTheLongestStartOfTheAnswerThatFits) {
  const sf::judge::Binding truth = bind_judge("llama", std::string(kTruth) + ", truncate: answer");
  const sf::judge::InputFit fit(*truth.recipe, truth);
  const auto tok = sf::model::load_tokenizer(fixtures() / "llama");
  const std::string answer = long_answer(1000);
  const sf::judge::FittedInput f = fit.fill({{"question", "Why?"}, {"answer", answer}}, "item");
  EXPECT_LE(fit.positions(f.text), fit.max_positions());
  ASSERT_GT(f.dropped_tokens, 0);
  ASSERT_EQ(f.text.rfind("Q: Why?\nA: ", 0), 0u) << f.text;
  ASSERT_EQ(f.text.substr(f.text.size() - 6), "\nTrue:") << f.text;
  // The kept answer is a start of the answer's tokens, and one token more would not fit.
  const auto ids = tok.encode(answer, false);
  const auto kept = static_cast<int64_t>(ids.size()) - f.dropped_tokens;
  const auto prefix = [&](int64_t n) { return tok.decode(std::vector<int32_t>(ids.begin(), ids.begin() + n), false); };
  EXPECT_EQ(f.text, "Q: Why?\nA: " + prefix(kept) + "\nTrue:");
  EXPECT_GT(fit.positions("Q: Why?\nA: " + prefix(kept + 1) + "\nTrue:"), fit.max_positions());
  // A prompt that does not fit even with an empty answer is an error.
  const std::map<std::string, std::string> huge = {{"question", long_answer(1500)}, {"answer", "x"}};
  EXPECT_NE(shape_error([&] { fit.fill(huge, "item"); }).find("even with an empty answer"), std::string::npos);
}

TEST(JudgeFit, ClassifierAnswerPolicyGivesTransformersTruncation) {
  const sf::judge::Binding cls = bind_judge(
      "roberta", "kind: classifier, metric: toxicity, labels: [benign, toxic], positive: toxic, truncate: answer");
  const sf::judge::InputFit fit(*cls.recipe, cls);
  const auto tok = sf::model::load_tokenizer(fixtures() / "roberta");
  // The golden fixture's texts and the ids transformers gave them (truncation=True, 22 positions).
  const auto cases = nlohmann::json::parse(sf::test::read_file(fixtures() / "cases.json"));
  const auto texts = cases["classifier_texts"].get<std::vector<std::string>>();
  auto ref = sf::test::read_reference(fixtures() / "roberta" / "reference.safetensors");
  bool cut = false;
  for (size_t i = 0; i < texts.size(); ++i) {
    const sf::judge::FittedInput f = fit.fill({{"answer", texts[i]}}, "item");
    const auto ids = tok.encode(f.text, true);
    const auto row = static_cast<int64_t>(i);
    const int64_t n = ref["attention_mask"][row].sum().item<int64_t>();
    ASSERT_EQ(static_cast<int64_t>(ids.size()), n) << texts[i];
    for (int64_t t = 0; t < n; ++t)
      EXPECT_EQ(ids[static_cast<size_t>(t)], ref["input_ids"][row][t].item<int64_t>()) << texts[i];
    cut = cut || f.dropped_tokens > 0;
  }
  EXPECT_TRUE(cut) << "the fixture should contain a text longer than the classifier's positions";
}

TEST(JudgeFit, TruncateIsTypedAndNeedsTheAnswer) {
  EXPECT_THROW(bind_judge("llama", std::string(kTruth) + ", truncate: left"), sf::ConfigError);
  EXPECT_THROW(
      bind_judge(
          "llama",
          R"x(template: plain, kind: label_prob, metric: m, prompt: "Q: {question}", labels: [" yes", " no"], positive: " yes", truncate: answer)x"),
      sf::ConfigError);
  EXPECT_EQ(bind_judge("llama", kTruth).recipe->to_json().at("truncate"), "error");
  EXPECT_EQ(bind_judge("llama", std::string(kTruth) + ", truncate: answer").recipe->to_json().at("truncate"), "answer");
}

}  // namespace
