// The golden fixtures on a GPU (label `cuda`, built only with SUPERFICIAL_WITH_CUDA): one rank,
// T = 1, cuda:0. Tolerances, max |Δlogit| against transformers (fp32 CPU reference):
//   cuda fp32  1e-4   (matmuls in full fp32: libtorch leaves TF32 off for matmul by default)
//   cuda bf16  0.25   (as on the CPU)
// Skipped on a machine without a GPU.
#include <gtest/gtest.h>

#include <map>

#include "io/safetensors.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;

std::filesystem::path model_dir(const std::string& variant) { return sf::test::fixtures_dir() / "models" / variant; }

double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  auto m = mask.to(torch::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).abs().masked_select(m).max().item<double>();
}

class GoldenCuda : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    for (auto& [name, t] : sf::io::read_safetensors(model_dir(GetParam()) / "reference.safetensors")) ref[name] = t;
  }
  CausalLM load(torch::Dtype dtype) const {
    sf::model::LoadOptions o;
    o.device = torch::Device(torch::kCUDA, 0);
    o.dtype = dtype;
    return CausalLM::load(model_dir(GetParam()), o);
  }
  torch::InferenceMode guard;
  std::map<std::string, torch::Tensor> ref;
};

TEST_P(GoldenCuda, Fp32LogitsGreedyTokensAndTopKMatchTransformers) {
  const auto model = load(torch::kFloat32);
  for (const std::string side : {"left", "right"}) {
    const auto out = model.forward(ref[side + "_ids"], ref[side + "_mask"]);
    EXPECT_TRUE(out.logits.is_cuda());
    EXPECT_LE(masked_max_diff(out.logits.cpu(), ref[side + "_logits"], ref[side + "_mask"]), 1e-4) << side;
  }
  std::vector<std::vector<int32_t>> prompts;
  const torch::Tensor ids = ref["left_ids"], mask = ref["left_mask"];
  for (int64_t b = 0; b < ids.size(0); ++b) {
    prompts.emplace_back();
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[b][t].item<int64_t>()) prompts.back().push_back(static_cast<int32_t>(ids[b][t].item<int64_t>()));
  }
  sf::model::GenerateOptions opts;
  opts.max_new_tokens = ref["greedy_tokens"].size(1);
  const auto gens = sf::model::generate(model, prompts, opts);
  for (size_t i = 0; i < gens.size(); ++i) {
    for (size_t t = 0; t < gens[i].tokens.size(); ++t) {
      EXPECT_EQ(gens[i].tokens[t],
                ref["greedy_tokens"][static_cast<int64_t>(i)][static_cast<int64_t>(t)].item<int64_t>());
    }
  }
  sf::model::ScoreOptions so;
  so.top_k = 5;
  const auto s = sf::model::score(model, prompts, so);
  const auto expected =
      sf::model::topk(ref["left_logits"][0].narrow(0, ids.size(1) - static_cast<int64_t>(prompts[0].size()),
                                                   static_cast<int64_t>(prompts[0].size())),
                      5);
  EXPECT_TRUE(torch::equal(s.topk_ids[0], expected.ids));
}

TEST_P(GoldenCuda, Bf16WithinTolerance) {
  const auto out = load(torch::kBFloat16).forward(ref["right_ids"], ref["right_mask"]);
  EXPECT_LE(masked_max_diff(out.logits.cpu(), ref["right_logits"], ref["right_mask"]), 0.25);
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenCuda,
                         ::testing::Values("llama_tied", "llama_untied", "llama3", "mistral_swa", "qwen2"));

}  // namespace
