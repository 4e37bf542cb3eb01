#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.hpp"
#include "kernels/small_gemm.hpp"

namespace {

using sf::kernels::Projection;
using sf::kernels::small_gemm;
using sf::kernels::small_gemm_applies;

torch::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::kFloat32);
}

// Largest difference from torch::linear relative to the size of the terms summed (sqrt(K) for unit
// normal entries): rounding alone stays near 1e-7, a wrong product or index is of order 1.
double error_vs_linear(const torch::Tensor& x, const Projection& p, const torch::Tensor& y) {
  const torch::Tensor expected = torch::linear(x, p.weight, p.bias);
  EXPECT_EQ(y.sizes(), expected.sizes());
  return (y - expected).abs().max().item<double>() / std::sqrt(static_cast<double>(x.size(-1)));
}

class SmallGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sf::kernels::small_gemm_supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
    threads_ = at::get_num_threads();
  }
  void TearDown() override {
    if (threads_ > 0) at::set_num_threads(threads_);
  }
  int threads_ = 0;
};

TEST_F(SmallGemm, EqualsLinearForEveryRowCountAndRaggedShapes) {
  uint64_t seed = 1;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 2, 3, 5, 6, 7, 12, 16, 31, 64}) {
      for (int64_t K : {1, 15, 16, 17, 100, 576}) {
        for (int64_t N : {1, 3, 4, 5, 17, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const Projection p{normal({N, K}, ++seed), {}};
          ASSERT_TRUE(small_gemm_applies(x, p));
          EXPECT_LT(error_vs_linear(x, p, small_gemm(x, {p})[0]), 2e-5) << "M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

TEST_F(SmallGemm, SeveralProjectionsWithBiasesAtOnceEqualEachAlone) {
  const torch::Tensor x = normal({2, 3, 64}, 7);  // [B,T,K]: 6 rows
  const std::vector<Projection> ps{
      {normal({96, 64}, 8), normal({96}, 9)}, {normal({32, 64}, 10), {}}, {normal({35, 64}, 11), normal({35}, 12)}};
  at::set_num_threads(2);
  const std::vector<torch::Tensor> ys = small_gemm(x, ps);
  ASSERT_EQ(ys.size(), 3u);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(ys[i].sizes(), (std::vector<int64_t>{2, 3, ps[i].weight.size(0)}));
    EXPECT_LT(error_vs_linear(x, ps[i], ys[i]), 2e-5) << "projection " << i;
  }
}

TEST_F(SmallGemm, ALargeVocabularyProjectionSplitOverThreads) {
  const torch::Tensor x = normal({16, 576}, 13);
  const Projection lm_head{normal({4099, 576}, 14), {}};
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    EXPECT_LT(error_vs_linear(x, lm_head, small_gemm(x, {lm_head})[0]), 2e-5) << threads << " threads";
  }
}

TEST_F(SmallGemm, InputsOutsideTheKernelAreNotTakenAndAreRefused) {
  const torch::Tensor x = normal({4, 32}, 15), w = normal({8, 32}, 16);
  EXPECT_TRUE(small_gemm_applies(x, {w, normal({8}, 17)}));
  const std::vector<std::pair<std::string, std::pair<torch::Tensor, Projection>>> refused{
      {"kSmallGemmMaxRows + 1 rows", {normal({sf::kernels::kSmallGemmMaxRows + 1, 32}, 18), {w, {}}}},
      {"bfloat16 input", {x.to(torch::kBFloat16), {w, {}}}},
      {"float64 weight", {x, {w.to(torch::kFloat64), {}}}},
      {"transposed weight", {x, {normal({32, 8}, 19).t(), {}}}},
      {"other K", {x, {normal({8, 31}, 20), {}}}},
      {"bias of other length", {x, {w, normal({7}, 21)}}},
      {"weight needing gradients", {x, {w.clone().requires_grad_(), {}}}},
  };
  for (const auto& [what, operands] : refused) {
    EXPECT_FALSE(small_gemm_applies(operands.first, operands.second)) << what;
    EXPECT_THROW(small_gemm(operands.first, {operands.second}), sf::ShapeError) << what;
  }
}

}  // namespace
