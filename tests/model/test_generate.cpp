// generate(): EOS / stop callback / length, the logits transform, recorded top-k, seeded sampling,
// and ensembles (proxy-tuning) in generation and continuation scoring.
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

TEST(Generate, TransformChangesLogitsBeforeTheChoiceAndTopKIsRecordedAfterIt) {
  auto model = fixture_model();
  GenerateOptions opts;
  opts.max_new_tokens = 4;
  opts.record_top_k = 3;
  int64_t calls = 0;
  const auto ensemble = sf::model::Ensemble::of(model, [&](const torch::Tensor& logits, const torch::Tensor& hidden) {
    ++calls;
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, model.config().vocab_size}));
    EXPECT_EQ(hidden.sizes(), (std::vector<int64_t>{3, model.config().hidden_size}));
    return logits.index_add(1, torch::tensor({42}), torch::full({3, 1}, 1000.0f));
  });
  auto gens = sf::model::generate(ensemble, {kPrompts}, opts);
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

// Continuous batching: rows of different prompt lengths end at different steps (stop callback,
// length); their slots take waiting rows, a late long prompt widens the running cache; with 8 slots
// the 40-token prompt gets a forward of its own, the short ones another (model/batching.hpp). Each row
// must decode as it does alone, on a plain and a sliding-window model.
TEST(Generate, ContinuousBatchingEqualsDecodingEachRowAlone) {
  for (const char* name : {"llama_tied", "mistral_swa"}) {
    const CausalLM model = CausalLM::load(sf::test::fixtures_dir() / "models" / name);
    std::vector<std::vector<int32_t>> prompts;
    for (int32_t i = 0; i < 8; ++i) {
      std::vector<int32_t> p;
      const int32_t len = i == 6 ? 40 : 1 + (i * 5) % 9;  // row 6: longer than the cache it joins
      for (int32_t t = 0; t < len; ++t) p.push_back(3 + (i * 37 + t * 11) % 90);
      prompts.push_back(p);
    }
    GenerateOptions opts;
    opts.max_new_tokens = 12;
    opts.record_top_k = 5;
    opts.stop = [](size_t row, const std::vector<int32_t>& g) { return g.size() == 1 + (row * 3) % 7; };
    opts.batch_size = 1;
    const auto alone = sf::model::generate(model, prompts, opts);
    for (int64_t batch : {2, 3, 8}) {
      opts.batch_size = batch;
      const auto together = sf::model::generate(model, prompts, opts);
      for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(together[i].tokens, alone[i].tokens) << name << " batch " << batch << " row " << i;
        EXPECT_EQ(together[i].finish_reason, alone[i].finish_reason);
        ASSERT_EQ(together[i].topk_logits.sizes(), alone[i].topk_logits.sizes());
        EXPECT_TRUE(torch::allclose(together[i].topk_logits, alone[i].topk_logits, 1e-4, 1e-4))
            << name << " batch " << batch << " row " << i;
      }
    }
  }
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

// Three models of the same vocabulary: a proxy-tuning ensemble M + α(E − Ā).
struct Proxy {
  CausalLM m = fixture_model();
  CausalLM e = CausalLM::random(m.config(), 11);
  CausalLM a = CausalLM::random(m.config(), 12);
  double alpha = 0.7;
  sf::model::Ensemble ensemble() const { return {{{&m, 1.0}, {&e, alpha}, {&a, -alpha}}, {}}; }
  // The summed logits [T,V] of one sequence per model, each forward run separately.
  torch::Tensor sum(const std::vector<int32_t>& sm, const std::vector<int32_t>& se, const std::vector<int32_t>& sa,
                    int64_t rows) const {
    auto last = [&](const CausalLM& model, const std::vector<int32_t>& seq) {
      const auto ids = torch::tensor(std::vector<int64_t>(seq.begin(), seq.end())).unsqueeze(0);
      const auto logits = model.forward(ids, torch::ones_like(ids)).logits[0];  // [T,V]
      return logits.narrow(0, logits.size(0) - rows, rows);
    };
    return last(m, sm) + alpha * (last(e, se) - last(a, sa));
  }
};

TEST(Ensemble, ProxyContinuationLogprobsEqualTheSumComputedSeparately) {
  torch::NoGradGuard no_grad;
  const Proxy p;
  // Each model reads its own prompt (its own template), then the same continuation.
  const std::vector<std::vector<int32_t>> pm = {{5, 6, 7}, {9}}, pe = {{5, 6, 7, 8, 30}, {9, 31}}, pa = {{40, 7}, {9}};
  const std::vector<std::vector<int32_t>> cont = {{11, 12, 13}, {14}};
  const auto got = sf::model::continuation_logprobs(p.ensemble(), {pm, pe, pa}, cont, 2);
  for (size_t i = 0; i < cont.size(); ++i) {
    auto cat = [&](std::vector<int32_t> a) {
      a.insert(a.end(), cont[i].begin(), cont[i].end());
      return a;
    };
    const auto n = static_cast<int64_t>(cont[i].size());
    // Rows predicting the continuation: the last n positions before its end.
    auto seq_m = cat(pm[i]), seq_e = cat(pe[i]), seq_a = cat(pa[i]);
    seq_m.pop_back();
    seq_e.pop_back();
    seq_a.pop_back();
    const auto lp = torch::log_softmax(p.sum(seq_m, seq_e, seq_a, n), -1);  // [n,V]
    double expected = 0;
    for (int64_t t = 0; t < n; ++t) expected += lp[t][cont[i][static_cast<size_t>(t)]].item<double>();
    EXPECT_NEAR(got[i], expected, 1e-5) << "row " << i;
  }
}

// Greedy decoding of the proxy ensemble equals the step-by-step argmax of the summed logits, each
// member's forward run on its own prompt alone.
using Prompts = std::vector<std::vector<int32_t>>;

void check_proxy_greedy(const Proxy& p, const Prompts& pm, const Prompts& pe, const Prompts& pa) {
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  opts.record_top_k = 4;
  const auto gens = sf::model::generate(p.ensemble(), {pm, pe, pa}, opts);
  for (size_t i = 0; i < pm.size(); ++i) {
    auto sm = pm[i], se = pe[i], sa = pa[i];
    std::vector<int32_t> tokens;
    for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
      const auto logits = p.sum(sm, se, sa, 1)[0];  // [V]
      const auto next = static_cast<int32_t>(logits.argmax().item<int64_t>());
      if (step == 0) {
        EXPECT_NEAR(gens[i].topk_logits[0][0].item<double>(), logits.max().item<double>(), 1e-4);
      }
      tokens.push_back(next);
      for (auto* s : {&sm, &se, &sa}) s->push_back(next);
    }
    EXPECT_EQ(gens[i].tokens, tokens) << "row " << i;
  }
}

// Each member's prompts have their own lengths. The first set is one prompt pass per member; in the
// second, the first member's lengths cut the rows into two prompt passes (the 40-token prompt alone),
// which every member's prompt pass follows, so that the slots agree although the other members'
// long prompts are other rows.
TEST(Ensemble, ProxyGreedyEqualsStepByStepArgmaxOfTheSum) {
  torch::NoGradGuard no_grad;
  const Proxy p;
  const auto run = [](int32_t first, int32_t n) {
    std::vector<int32_t> r;
    for (int32_t t = 0; t < n; ++t) r.push_back(first + t % 50);
    return r;
  };
  for (const auto& [pm, pe, pa] :
       {std::tuple<Prompts, Prompts, Prompts>{{{5, 6, 7, 8}, {20}}, {{1, 5, 6, 7, 8}, {2, 20}}, {{5, 8}, {3, 3, 20}}},
        {{run(5, 40), {20}, {7, 9}}, {{5}, run(6, 40), {7, 9, 11}}, {{5, 8}, {3, 3, 20}, run(9, 40)}}}) {
    check_proxy_greedy(p, pm, pe, pa);
  }
  // A member of another vocabulary is refused.
  const Prompts pm = {{5, 6, 7, 8}, {20}};
  GenerateOptions opts;
  opts.max_new_tokens = 6;
  auto other = p.m.config();
  other.vocab_size += 1;
  const CausalLM wide = CausalLM::random(other, 3);
  EXPECT_THROW(sf::model::generate(sf::model::Ensemble{{{&p.m, 1.0}, {&wide, 1.0}}, {}}, {pm, pm}, opts),
               sf::ShapeError);
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

// `from` computes logits only for the tail of each sequence: the rows it returns are those of the
// full pass (up to float reduction order), for sequences of different lengths in one batch.
TEST(Score, FromReturnsTheTailRowsOfTheFullPass) {
  auto model = fixture_model();
  const std::vector<std::vector<int32_t>> seqs = {{5, 6, 7, 8, 9, 10, 11}, {12, 13}, {20, 21, 22, 23}, {30}};
  sf::model::ScoreOptions full;
  full.top_k = 4;
  full.hidden = true;
  full.batch_size = 3;
  sf::model::ScoreOptions tail = full;
  tail.from = {4, 0, 3, 1};
  const auto a = sf::model::score(model, seqs, full), b = sf::model::score(model, seqs, tail);
  EXPECT_TRUE(b.token_logprobs.empty());
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int64_t lo = tail.from[i], n = static_cast<int64_t>(seqs[i].size()) - lo;
    ASSERT_EQ(b.topk_logits[i].sizes(), (std::vector<int64_t>{n, 4})) << "sequence " << i;
    ASSERT_EQ(b.hidden[i].size(0), n) << "sequence " << i;
    EXPECT_TRUE(torch::allclose(b.topk_logits[i], a.topk_logits[i].narrow(0, lo, n), 1e-5, 1e-5)) << i;
    EXPECT_TRUE(b.topk_ids[i].equal(a.topk_ids[i].narrow(0, lo, n))) << "sequence " << i;
    EXPECT_TRUE(torch::allclose(b.hidden[i], a.hidden[i].narrow(0, lo, n), 1e-5, 1e-5)) << "sequence " << i;
  }
  tail.from = {4, 0, 3};
  EXPECT_THROW(sf::model::score(model, seqs, tail), sf::ShapeError);  // one entry per sequence
  tail.from = {4, 3, 3, 1};
  EXPECT_THROW(sf::model::score(model, seqs, tail), sf::ShapeError);  // past the end of {12, 13}
  tail.from = {4, 0, -1, 1};
  EXPECT_THROW(sf::model::score(model, seqs, tail), sf::ShapeError);
}

// Scoring makes the logits of a batch a block of rows at a time (more rows than one block here): the
// log-probs and top-k of each sequence equal those of scoring it alone.
TEST(Score, ABatchOfManyRowsEqualsEachSequenceAlone) {
  auto model = fixture_model();
  const int64_t V = model.config().vocab_size;
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 4; ++s) {
    seqs.emplace_back();
    for (int t = 0; t < 60 + 7 * s; ++t) seqs.back().push_back(static_cast<int32_t>((t * 37 + s * 11 + 3) % V));
  }
  sf::model::ScoreOptions opts;
  opts.top_k = 5;
  opts.batch_size = 4;
  const auto all = sf::model::score(model, seqs, opts);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto one = sf::model::score(model, {seqs[i]}, opts);
    EXPECT_TRUE(torch::allclose(all.token_logprobs[i], one.token_logprobs[0], 1e-5, 1e-5)) << "sequence " << i;
    EXPECT_TRUE(torch::allclose(all.topk_logits[i], one.topk_logits[0], 1e-5, 1e-5)) << "sequence " << i;
    EXPECT_TRUE(all.topk_ids[i].equal(one.topk_ids[0])) << "sequence " << i;
  }
}

}  // namespace
