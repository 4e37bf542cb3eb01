// generate(): EOS / stop callback / length, the logits hook, recorded top-k, and seeded sampling.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::GenerateOptions;

CausalLM fixture_model() { return CausalLM::load(sf::test::fixtures_dir() / "models" / "llama_tied"); }

const std::vector<std::vector<int32_t>> kPrompts = {{5, 6, 7, 8, 9, 10}, {11, 12}, {20, 21, 22, 23}};

TEST(Generate, EosEndsOnlyItsRowAndIsIncluded) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  auto free_run = sf::model::generate(model, kPrompts, opts);
  const int32_t eos = free_run[0].tokens[2];
  opts.eos_ids = {eos};
  auto gens = sf::model::generate(model, kPrompts, opts);
  ASSERT_EQ(gens[0].tokens.size(), 3u);
  EXPECT_EQ(gens[0].tokens.back(), eos);
  EXPECT_EQ(gens[0].finish_reason, "eos");
  for (size_t i = 1; i < gens.size(); ++i) {
    // Other rows follow their free run up to (and including) their first eos, if any.
    const auto& f = free_run[i].tokens;
    const auto stop = std::find(f.begin(), f.end(), eos);
    const std::vector<int32_t> expected(f.begin(), stop == f.end() ? f.end() : stop + 1);
    EXPECT_EQ(gens[i].tokens, expected);
  }
}

TEST(Generate, StopCallbackAndLength) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.max_new_tokens = 5;
  opts.stop = [](size_t row, const std::vector<int32_t>& g) { return row == 1 && g.size() == 2; };
  auto gens = sf::model::generate(model, kPrompts, opts);
  EXPECT_EQ(gens[1].tokens.size(), 2u);
  EXPECT_EQ(gens[1].finish_reason, "stop");
  EXPECT_EQ(gens[0].tokens.size(), 5u);
  EXPECT_EQ(gens[0].finish_reason, "length");
}

TEST(Generate, HookModifiesLogitsBeforeTheChoiceAndTopKIsRecordedAfterIt) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.max_new_tokens = 4;
  opts.record_top_k = 3;
  int64_t calls = 0;
  opts.logits_hook = [&](torch::Tensor& logits, const torch::Tensor& hidden, int64_t step) {
    EXPECT_EQ(step, calls++);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, model.config().vocab_size}));
    EXPECT_EQ(hidden.sizes(), (std::vector<int64_t>{3, model.config().hidden_size}));
    logits.select(1, 42).add_(1000.0f);
  };
  auto gens = sf::model::generate(model, kPrompts, opts);
  EXPECT_EQ(calls, 4);
  for (const auto& g : gens) {
    EXPECT_EQ(g.tokens, (std::vector<int32_t>(4, 42)));
    ASSERT_EQ(g.topk_ids.sizes(), (std::vector<int64_t>{4, 3}));
    EXPECT_EQ(g.topk_ids[0][0].item<int64_t>(), 42);
    EXPECT_GT(g.topk_logits[0][0].item<float>(), 500.0f);
    EXPECT_GE(g.topk_logits[0][0].item<float>(), g.topk_logits[0][1].item<float>());
  }
}

TEST(Generate, SeededSamplingIsReproducibleAndIndependentOfBatching) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.greedy = false;
  opts.temperature = 1.5;
  opts.top_p = 0.9;
  opts.seed = 1234;
  opts.max_new_tokens = 10;
  auto a = sf::model::generate(model, kPrompts, opts);
  auto b = sf::model::generate(model, kPrompts, opts);
  opts.batch_size = 1;
  auto c = sf::model::generate(model, kPrompts, opts);
  opts.seed = 99;
  auto d = sf::model::generate(model, kPrompts, opts);
  bool any_diff = false;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].tokens, c[i].tokens);
    any_diff = any_diff || a[i].tokens != d[i].tokens;
  }
  EXPECT_TRUE(any_diff);
}

TEST(Generate, TinyTopPEqualsGreedy) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  auto greedy = sf::model::generate(model, kPrompts, opts);
  opts.greedy = false;
  opts.top_p = 1e-6;
  auto nucleus = sf::model::generate(model, kPrompts, opts);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(greedy[i].tokens, nucleus[i].tokens);
}

TEST(Generate, RejectsBadInput) {
  auto model = fixture_model();
  GenerateOptions opts;
  EXPECT_THROW(sf::model::generate(model, {{}}, opts), sf::ShapeError);
  EXPECT_THROW(sf::model::generate(model, {{1, 100000}}, opts), sf::ShapeError);
  opts.greedy = false;
  opts.temperature = 0;
  EXPECT_THROW(sf::model::generate(model, {{1, 2}}, opts), sf::ShapeError);
}

TEST(Score, EmptyAndSingleTokenSequences) {
  auto model = fixture_model();
  sf::model::ScoreOptions opts;
  opts.top_k = 2;
  auto s = sf::model::score(model, {{}, {7}, {7, 8, 9}}, opts);
  EXPECT_EQ(s.token_logprobs[0].size(0), 0);
  EXPECT_EQ(s.topk_ids[0].sizes(), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(s.token_logprobs[1].size(0), 1);
  EXPECT_EQ(s.token_logprobs[2].size(0), 3);
  EXPECT_LT(s.token_logprobs[2][2].item<float>(), 0.0f);
}

}  // namespace
