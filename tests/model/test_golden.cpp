// The decoder against transformers (fixtures from scripts/golden_models.py: fp32, eager attention).
//
// Tolerances, max |Δlogit| at real (unpadded) positions:
//   device  dtype  tolerance  why
//   cpu     fp32   1e-4       same math, different op order/BLAS
//   cpu     bf16   0.25       bf16 weight matrices and bf16-rounded products (8-bit mantissa), float32
//                             between them, through 2 layers, logits of magnitude ~5 (measured
//                             0.05-0.10); greedy tokens are not required to match in bf16
#include <gtest/gtest.h>

#include <map>

#include "kernels/small_gemm.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::KVCache;

const double kFp32Tol = sf::test::logit_tolerance(torch::kCPU, torch::kFloat32);
const double kBf16Tol = sf::test::logit_tolerance(torch::kCPU, torch::kBFloat16);

using sf::test::masked_max_diff;
using sf::test::unpad;

std::filesystem::path model_dir(const std::string& variant) { return sf::test::golden_model(variant); }
std::map<std::string, torch::Tensor> reference(const std::string& variant) {
  return sf::test::read_reference(model_dir(variant) / "reference.safetensors");
}

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model = CausalLM::load(model_dir(GetParam()));
    ref = reference(GetParam());
  }
  torch::InferenceMode guard;
  CausalLM model;
  std::map<std::string, torch::Tensor> ref;
};

TEST_P(Golden, LeftPaddedLogitsAndHiddenMatchTransformers) {
  auto out = model.forward(ref["left_ids"], ref["left_mask"]);
  EXPECT_LE(masked_max_diff(out.logits, ref["left_logits"], ref["left_mask"]), kFp32Tol);
  EXPECT_LE(masked_max_diff(out.hidden, ref["left_hidden"], ref["left_mask"]), kFp32Tol);
}

// A larger batch (the golden batch repeated to > 600 rows of B*T, where BLAS picks other kernels
// and the MLP runs in row blocks with a partial last block) must still match transformers, copy by copy.
TEST_P(Golden, LargeBatchMatchesTransformers) {
  const torch::Tensor ids = ref["left_ids"], mask = ref["left_mask"];
  const int64_t copies = 600 / ids.numel() + 1;
  ASSERT_GT(copies * ids.numel(), 600);
  auto out = model.forward(ids.repeat({copies, 1}), mask.repeat({copies, 1}));
  for (int64_t c = 0; c < copies; ++c) {
    const auto part = out.logits.narrow(0, c * ids.size(0), ids.size(0));
    EXPECT_LE(masked_max_diff(part, ref["left_logits"], mask), kFp32Tol) << "copy " << c;
  }
}

TEST_P(Golden, RightPaddedLogitsMatchTransformers) {
  auto out = model.forward(ref["right_ids"], ref["right_mask"]);
  EXPECT_LE(masked_max_diff(out.logits, ref["right_logits"], ref["right_mask"]), kFp32Tol);
}

TEST_P(Golden, GreedyTokensMatchTransformers) {
  sf::model::GenerateOptions opts;
  opts.max_new_tokens = ref["greedy_tokens"].size(1);
  opts.batch_size = 2;  // batches of 2 and 1: padding differs from the reference's, tokens must not
  auto gens = sf::model::generate(model, unpad(ref["left_ids"], ref["left_mask"]), opts);
  ASSERT_EQ(gens.size(), 3u);
  for (size_t i = 0; i < gens.size(); ++i) {
    const torch::Tensor expected = ref["greedy_tokens"][static_cast<int64_t>(i)];
    ASSERT_EQ(static_cast<int64_t>(gens[i].tokens.size()), expected.size(0));
    for (size_t t = 0; t < gens[i].tokens.size(); ++t) {
      EXPECT_EQ(gens[i].tokens[t], expected[static_cast<int64_t>(t)].item<int64_t>()) << "row " << i << " step " << t;
    }
    EXPECT_EQ(gens[i].finish_reason, "length");
  }
}

TEST_P(Golden, KvCachedStepwiseEqualsFullForward) {
  const torch::Tensor ids = ref["left_ids"], mask = ref["left_mask"];
  const int64_t T = ids.size(1), first = 5;
  auto full = model.forward(ids, mask);
  KVCache cache;
  std::vector<torch::Tensor> parts{model.forward(ids.narrow(1, 0, first), mask.narrow(1, 0, first), &cache).logits};
  for (int64_t t = first; t < T; ++t) {
    parts.push_back(model.forward(ids.narrow(1, t, 1), mask.narrow(1, 0, t + 1), &cache).logits);
  }
  EXPECT_EQ(cache.length(), T);
  EXPECT_LE(masked_max_diff(torch::cat(parts, 1), full.logits, mask), kFp32Tol);
}

// bf16 on a CPU: the KV cache (and every activation) stays float32, and the kernels of its matrix
// products do the same arithmetic: bf16-rounded rows times bf16 weights, summed in float32, rounded
// to bf16. The full pass of 8 equal rows (more rows than small_gemm takes) runs on the AMX kernel
// where the CPU has AMX-BF16, on oneDNN's matmul elsewhere; the one-row decoding steps run on
// small_gemm. Were one of them to skip a rounding, nearly every logit of the steps would differ from
// the full pass, not only those after a sum that the two orders of summation round to neighbouring
// bf16 values.
TEST_P(Golden, CpuBf16DecodingStepsAgreeWithTheFullPass) {
  sf::model::LoadOptions opts;
  opts.dtype = torch::kBFloat16;
  const auto bf = CausalLM::load(model_dir(GetParam()), opts);
  const torch::Tensor ids = ref["left_ids"].repeat({8, 1}), mask = ref["left_mask"].repeat({8, 1});
  const int64_t T = ids.size(1), first = 5;
  ASSERT_GT(ids.numel(), sf::kernels::small_gemm_max_rows(sf::kernels::best_isa()));
  const auto full = bf.forward(ids, mask);
  const torch::Tensor row = ids.narrow(0, 0, 1), row_mask = mask.narrow(0, 0, 1);
  KVCache cache;
  std::vector<torch::Tensor> parts{bf.forward(row.narrow(1, 0, first), row_mask.narrow(1, 0, first), &cache).logits};
  for (int64_t t = first; t < T; ++t) {
    parts.push_back(bf.forward(row.narrow(1, t, 1), row_mask.narrow(1, 0, t + 1), &cache).logits);
  }
  EXPECT_EQ(cache.keys.at(0).scalar_type(), torch::kFloat32);
  EXPECT_EQ(full.hidden.scalar_type(), torch::kFloat32);
  // Equal but for the rare sum that the two orders of summation round to neighbouring bf16 values
  // (and what follows from it).
  const torch::Tensor steps = torch::cat(parts, 1), whole = full.logits.narrow(0, 0, 1);
  const torch::Tensor real = row_mask.to(torch::kBool).unsqueeze(-1).expand_as(whole);
  const double mean = (steps - whole).abs().masked_select(real).mean().item<double>();
  EXPECT_LT(mean, 2e-3);  // 5.4e-3 to 6.7e-3 with small_gemm's sums unrounded (against oneDNN)
  EXPECT_LE(masked_max_diff(steps, whole, row_mask), 0.05);
}

TEST_P(Golden, LastNIsTheTailOfTheFullForward) {
  const torch::Tensor ids = ref["left_ids"], mask = ref["left_mask"];
  const int64_t T = ids.size(1);
  auto full = model.forward(ids, mask);
  auto tail = model.forward(ids, mask, nullptr, /*last_n=*/3);
  ASSERT_EQ(tail.logits.size(1), 3);
  EXPECT_LE((tail.logits - full.logits.narrow(1, T - 3, 3)).abs().max().item<double>(), kFp32Tol);
  EXPECT_LE((tail.hidden - full.hidden.narrow(1, T - 3, 3)).abs().max().item<double>(), kFp32Tol);
}

// Padding among the last positions (right-padded rows, a row with no token there): the tail is
// still the full forward's, zeros included where it has no token.
TEST_P(Golden, LastNWithPaddingInTheTail) {
  const torch::Tensor ids = ref["left_ids"];
  torch::Tensor mask = ref["left_mask"].clone();
  const int64_t T = ids.size(1), B = ids.size(0);
  ASSERT_GE(B, 2);
  mask[0].narrow(0, T - 2, 2).fill_(0);
  mask[1].narrow(0, T - 4, 4).fill_(0);
  auto full = model.forward(ids, mask);
  auto tail = model.forward(ids, mask, nullptr, /*last_n=*/4);
  ASSERT_EQ(tail.hidden.size(1), 4);
  EXPECT_LE((tail.logits - full.logits.narrow(1, T - 4, 4)).abs().max().item<double>(), kFp32Tol);
  EXPECT_LE((tail.hidden - full.hidden.narrow(1, T - 4, 4)).abs().max().item<double>(), kFp32Tol);
  EXPECT_EQ(tail.hidden[1].abs().max().item<double>(), 0.0);
  EXPECT_GT(tail.hidden[0][1].abs().max().item<double>(), 0.0);
}

TEST_P(Golden, SequenceAloneEqualsItInsideALeftPaddedBatch) {
  const torch::Tensor ids = ref["left_ids"], mask = ref["left_mask"];
  auto batch = model.forward(ids, mask);
  const int64_t row = 2, n = mask[row].sum().item<int64_t>(), T = ids.size(1);
  auto alone = model.forward(ids[row].narrow(0, T - n, n).unsqueeze(0), torch::ones({1, n}, torch::kInt64));
  EXPECT_LE((alone.logits[0] - batch.logits[row].narrow(0, T - n, n)).abs().max().item<double>(), kFp32Tol);
}

TEST_P(Golden, SaveLoadRoundTripGivesIdenticalLogits) {
  sf::test::TempDir dir("golden-save");
  model.save(dir.path());
  auto again = CausalLM::load(dir.path());
  EXPECT_TRUE(torch::equal(again.forward(ref["left_ids"], ref["left_mask"]).logits,
                           model.forward(ref["left_ids"], ref["left_mask"]).logits));
}

TEST_P(Golden, Bf16WithinTolerance) {
  sf::model::LoadOptions opts;
  opts.dtype = torch::kBFloat16;
  auto bf = CausalLM::load(model_dir(GetParam()), opts);
  auto out = bf.forward(ref["right_ids"], ref["right_mask"]);
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat32);
  EXPECT_LE(masked_max_diff(out.logits, ref["right_logits"], ref["right_mask"]), kBf16Tol);
}

TEST_P(Golden, ScoreMatchesLogSoftmaxOfReference) {
  const auto seqs = unpad(ref["right_ids"], ref["right_mask"]);
  sf::model::ScoreOptions opts;
  opts.top_k = 5;
  opts.hidden = true;
  opts.batch_size = 2;
  auto s = sf::model::score(model, seqs, opts);
  const torch::Tensor lsm = torch::log_softmax(ref["right_logits"], -1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int64_t n = static_cast<int64_t>(seqs[i].size()), b = static_cast<int64_t>(i);
    ASSERT_EQ(s.token_logprobs[i].size(0), n);
    EXPECT_EQ(s.token_logprobs[i][0].item<float>(), 0.0f);
    for (int64_t t = 1; t < n; ++t) {
      EXPECT_NEAR(s.token_logprobs[i][t].item<double>(), lsm[b][t - 1][seqs[i][static_cast<size_t>(t)]].item<double>(),
                  kFp32Tol);
    }
    auto tk = ref["right_logits"][b].narrow(0, 0, n).topk(5, -1);
    EXPECT_LE((s.topk_logits[i] - std::get<0>(tk)).abs().max().item<double>(), kFp32Tol);
    EXPECT_TRUE(torch::equal(s.topk_ids[i], std::get<1>(tk)));
    EXPECT_EQ(s.hidden[i].sizes(), (std::vector<int64_t>{n, model.config().hidden_size}));
  }
}

TEST_P(Golden, ContinuationLogprobsMatchReference) {
  // The same sequences split into a one-token prompt and the rest as a continuation.
  const auto seqs = unpad(ref["right_ids"], ref["right_mask"]);
  std::vector<std::vector<int32_t>> prompts, conts;
  for (const auto& s : seqs) {
    prompts.push_back({s[0]});
    conts.emplace_back(s.begin() + 1, s.end());
  }
  const auto got = sf::model::continuation_logprobs(sf::model::Ensemble::of(model), {prompts}, conts, 2);
  const torch::Tensor lsm = torch::log_softmax(ref["right_logits"], -1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    double expected = 0;
    for (size_t t = 1; t < seqs[i].size(); ++t)
      expected += lsm[static_cast<int64_t>(i)][static_cast<int64_t>(t) - 1][seqs[i][t]].item<double>();
    EXPECT_NEAR(got[i], expected, kFp32Tol * static_cast<double>(seqs[i].size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Golden,
                         ::testing::Values("llama_tied", "llama_untied", "llama3", "mistral_swa", "qwen2"));

TEST(GoldenSlidingWindow, WindowChangesTheResult) {
  // The mistral fixture's window (4) is shorter than its sequences (12): dropping it must change
  // late positions, or the test above would not be testing the window.
  torch::InferenceMode guard;
  auto ref = reference("mistral_swa");
  auto cfg = sf::model::ModelConfig::from_file(model_dir("mistral_swa") / "config.json");
  ASSERT_EQ(cfg.sliding_window, 4);
  sf::test::TempDir dir("golden-noswa");
  std::filesystem::copy_file(model_dir("mistral_swa") / "model.safetensors", dir / "model.safetensors");
  cfg.sliding_window.reset();
  sf::test::write_file(dir / "config.json", cfg.to_json().dump());
  auto full = CausalLM::load(dir.path()).forward(ref["right_ids"], ref["right_mask"]);
  EXPECT_GT((full.logits[0][11] - ref["right_logits"][0][11]).abs().max().item<double>(), 1e-2);
}

}  // namespace
