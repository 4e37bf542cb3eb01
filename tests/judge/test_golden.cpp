// The judges against transformers (fixtures from scripts/golden_judges.py: tiny random models, fp32,
// eager attention, a byte-level BPE tokenizer trained with `tokenizers`).
//
// Tolerances (cpu, fp32):
//   what                                              tolerance  why
//   RoBERTa classifier logits, padded batch           1e-4       same math, other op order/BLAS
//   label_prob judge: label probabilities             1e-5       softmax over label log-likelihoods
//   label_prob judge: label log-likelihoods           1e-4       sums of per-token log-probs
//   classifier tokenizer ids (with and without <s> </s>, truncation)   identical
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "judge/kinds.hpp"
#include "judge/roberta.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kLogitTol = 1e-4;
constexpr double kProbTol = 1e-5;
constexpr double kLoglikTol = 1e-4;

fs::path fixtures() { return sf::test::fixtures_dir() / "judges"; }

std::map<std::string, torch::Tensor> reference(const std::string& model) {
  return sf::test::read_reference(fixtures() / model / "reference.safetensors");
}

json cases() { return json::parse(sf::test::read_file(fixtures() / "cases.json")); }

sf::judge::Recipe recipe(sf::judge::Kind kind, std::vector<std::string> labels) {
  sf::judge::Recipe r;
  r.name = "golden";
  r.kind = kind;
  r.metric = "m";
  r.prompt = "{answer}";
  r.positive = labels[0];
  r.labels = std::move(labels);
  r.where = "golden";
  return r;
}

TEST(JudgeGolden, ClassifierTokenizerIdsMatchTokenizers) {
  const auto tok = sf::tok::Tokenizer::from_file(fixtures() / "bpe" / "tokenizer.json");
  const json c = json::parse(sf::test::read_file(fixtures() / "tokenizer_cases.json"));
  ASSERT_GT(c.size(), 10u);
  for (const auto& item : c) {
    const std::string text = item["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, false), item["ids"].get<std::vector<int32_t>>()) << json(text).dump();
    EXPECT_EQ(tok.encode(text, true), item["ids_special"].get<std::vector<int32_t>>()) << json(text).dump();
  }
}

TEST(JudgeGolden, RobertaLogitsOfAPaddedBatchMatchTransformers) {
  torch::InferenceMode guard;
  const auto model = sf::judge::RobertaClassifier::load(fixtures() / "roberta");
  auto ref = reference("roberta");
  const torch::Tensor logits = model.forward(ref["input_ids"], ref["attention_mask"]);  // [B,2]
  ASSERT_EQ(logits.sizes(), ref["logits"].sizes());
  EXPECT_LE((logits - ref["logits"]).abs().max().item<double>(), kLogitTol);
  // Padding does not change a sequence's logits: each row alone gives the same.
  for (int64_t b = 0; b < ref["input_ids"].size(0); ++b) {
    const int64_t n = ref["attention_mask"][b].sum().item<int64_t>();
    const torch::Tensor alone =
        model.forward(ref["input_ids"][b].narrow(0, 0, n).unsqueeze(0), torch::ones({1, n}, torch::kInt64));
    EXPECT_LE((alone[0] - ref["logits"][b]).abs().max().item<double>(), kLogitTol) << "row " << b;
  }
}

TEST(JudgeGolden, ClassifierJudgeEncodesTruncatesAndScoresAsTransformers) {
  const auto texts = cases()["classifier_texts"].get<std::vector<std::string>>();
  auto ref = reference("roberta");
  sf::judge::ClassifierJudge judge(recipe(sf::judge::Kind::kClassifier, {"benign", "toxic"}),
                                   sf::judge::RobertaClassifier::load(fixtures() / "roberta"),
                                   sf::tok::Tokenizer::from_file(fixtures() / "roberta" / "tokenizer.json"), 2);
  bool truncated = false;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = judge.encode(texts[i]);
    const int64_t n = ref["attention_mask"][static_cast<int64_t>(i)].sum().item<int64_t>();
    ASSERT_EQ(static_cast<int64_t>(ids.size()), n) << texts[i];
    for (int64_t t = 0; t < n; ++t)
      EXPECT_EQ(ids[static_cast<size_t>(t)], ref["input_ids"][static_cast<int64_t>(i)][t].item<int64_t>());
    truncated = truncated || n == ref["input_ids"].size(1);
  }
  EXPECT_TRUE(truncated) << "the fixture should contain a text cut at the model's positions";
  // Batches of 2 (other padding than the reference's batch of 5): the same logits.
  EXPECT_LE((judge.logits(texts) - ref["logits"]).abs().max().item<double>(), kLogitTol);
  const auto verdicts = judge.judge(texts);
  const torch::Tensor probs = torch::softmax(ref["logits"].to(torch::kFloat64), -1);
  for (size_t i = 0; i < verdicts.size(); ++i) {
    const auto row = static_cast<int64_t>(i);
    EXPECT_NEAR(verdicts[i].prob[1], probs[row][1].item<double>(), kProbTol);
    EXPECT_EQ(verdicts[i].label, probs[row][1].item<double>() > probs[row][0].item<double>() ? "toxic" : "benign");
    EXPECT_NEAR(verdicts[i].score, verdicts[i].prob[0], 1e-12);  // positive = first label here
  }
}

TEST(JudgeGolden, LabelProbabilitiesOfAPaddedBatchMatchTransformers) {
  const json c = cases();
  const auto inputs = c["judge_inputs"].get<std::vector<std::string>>();
  auto ref = reference("llama");
  for (const auto& [set, labels_json] : c["label_sets"].items()) {
    const auto labels = labels_json.get<std::vector<std::string>>();
    for (int64_t batch : {1, 3}) {
      sf::model::LoadOptions opts;
      sf::judge::LabelProbJudge judge(recipe(sf::judge::Kind::kLabelProb, labels),
                                      sf::model::CausalLM::load(fixtures() / "llama", opts),
                                      sf::tok::Tokenizer::from_file(fixtures() / "llama" / "tokenizer.json"),
                                      sf::tok::ChatTemplate::preset("plain"), batch);
      const auto verdicts = judge.judge(inputs);
      ASSERT_EQ(verdicts.size(), inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i) {
        for (size_t l = 0; l < labels.size(); ++l) {
          const auto row = static_cast<int64_t>(i), col = static_cast<int64_t>(l);
          EXPECT_NEAR(verdicts[i].prob[l], ref[set + "_prob"][row][col].item<double>(), kProbTol)
              << set << " input " << i << " label " << labels[l] << " batch " << batch;
          EXPECT_NEAR(verdicts[i].raw[l], ref[set + "_loglik"][row][col].item<double>(), kLoglikTol)
              << set << " input " << i << " label " << labels[l] << " batch " << batch;
        }
        EXPECT_NEAR(verdicts[i].score, verdicts[i].prob[0], 1e-12);
      }
    }
  }
}

}  // namespace
