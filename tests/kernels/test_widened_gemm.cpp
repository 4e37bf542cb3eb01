#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "bf16_expect.hpp"
#include "core/error.hpp"
#include "kernels/widened_gemm.hpp"

namespace {

using sf::kernels::Projection;
using sf::kernels::widened_gemm;
using sf::kernels::widened_gemm_applies;
using sf::test::normal;
using sf::test::rounded_product;
using sf::test::share_equal;

class WidenedGemm : public ::testing::Test {
 protected:
  void SetUp() override { threads_ = at::get_num_threads(); }
  void TearDown() override { at::set_num_threads(threads_); }
  int threads_ = 1;
};

// Every shape class: rows fewer and more than the kernel's blocks of weight rows (about 900 at
// K = 576), K off the vector width, with and without bias, on 1 to 3 threads.
TEST_F(WidenedGemm, EqualsTheRoundedProductOfRoundedOperandsForRaggedShapes) {
  uint64_t seed = 1;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 5, 65, 300}) {
      for (int64_t K : {1, 17, 576}) {
        for (int64_t N : {1, 33, 2000}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const torch::Tensor bias = N == 33 ? torch::Tensor() : normal({N}, ++seed);
          const Projection p{normal({N, K}, ++seed).to(torch::kBFloat16), bias};
          ASSERT_TRUE(widened_gemm_applies(x, p));
          const torch::Tensor y = widened_gemm(x, p);
          EXPECT_EQ(y.scalar_type(), torch::kFloat32);
          const torch::Tensor xr = x.to(torch::kBFloat16).to(torch::kFloat32);
          EXPECT_GE(share_equal(y, rounded_product(xr, p.weight, p.bias), p.bias, K), 0.97)
              << threads << " threads, M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

TEST_F(WidenedGemm, KeepsTheLeadingDimensionsAndAgreesWithTorchsBf16Matmul) {
  const torch::Tensor x = normal({2, 7, 64}, 100);  // [B,T,K]
  const Projection p{normal({48, 64}, 101).to(torch::kBFloat16), normal({48}, 102)};
  const torch::Tensor y = widened_gemm(x, p);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 7, 48}));
  const torch::Tensor torchs = torch::linear(x.to(torch::kBFloat16), p.weight).to(torch::kFloat32) + p.bias;
  EXPECT_GE(share_equal(y, torchs, p.bias, 64), 0.97);
}

TEST_F(WidenedGemm, RoundsTheInputRowsAndEachSum) {
  // x with bits below bf16's precision: the results are those of the rounded x; and every result
  // less its bias is a bf16 value.
  const torch::Tensor x = normal({40, 256}, 200) * (1 + 1.0 / 512);
  const Projection p{normal({300, 256}, 201).to(torch::kBFloat16), {}};
  const torch::Tensor y = widened_gemm(x, p);
  EXPECT_GE(share_equal(y, rounded_product(x.to(torch::kBFloat16).to(torch::kFloat32), p.weight, {}), {}, 256), 0.99);
  EXPECT_LE(y.eq(rounded_product(x, p.weight, {})).to(torch::kFloat64).mean().item<double>(), 0.95);
  EXPECT_TRUE(y.equal(y.to(torch::kBFloat16).to(torch::kFloat32)));
}

TEST_F(WidenedGemm, NonFiniteSumsRoundAsBf16Does) {
  torch::Tensor x = normal({3, 16}, 300);
  x[0][0] = std::numeric_limits<float>::quiet_NaN();
  x[1][0] = std::numeric_limits<float>::infinity();
  const Projection p{torch::ones({4, 16}).to(torch::kBFloat16), {}};
  const torch::Tensor y = widened_gemm(x, p);
  EXPECT_TRUE(y[0].isnan().all().item<bool>());
  EXPECT_TRUE(y[1].isinf().all().item<bool>());
  EXPECT_TRUE(y[2].isfinite().all().item<bool>());
  // A float32 sum beyond bf16's largest value and half its step (3.3895e38 + 6.6e35): 2 × 1.6999e38
  // is finite in float32 and rounds to infinity in bf16, as c10::BFloat16 rounds it.
  const torch::Tensor big = torch::full({1, 2}, 1.7e38f);
  const torch::Tensor over = widened_gemm(big, {torch::ones({1, 2}).to(torch::kBFloat16), {}});
  EXPECT_TRUE(over.isinf().all().item<bool>());
}

TEST_F(WidenedGemm, InputsOutsideTheKernelAreNotTakenAndAreRefused) {
  const torch::Tensor x = normal({4, 32}, 400), w = normal({8, 32}, 401).to(torch::kBFloat16);
  EXPECT_TRUE(widened_gemm_applies(x, {w, normal({8}, 402)}));
  const std::vector<std::pair<std::string, std::pair<torch::Tensor, Projection>>> refused{
      {"float32 weight", {x, {w.to(torch::kFloat32), {}}}},
      {"bfloat16 input", {x.to(torch::kBFloat16), {w, {}}}},
      {"transposed weight", {x, {normal({32, 8}, 403).to(torch::kBFloat16).t(), {}}}},
      {"other K", {x, {normal({8, 31}, 404).to(torch::kBFloat16), {}}}},
      {"bias of other length", {x, {w, normal({7}, 405)}}},
      {"bf16 bias", {x, {w, normal({8}, 406).to(torch::kBFloat16)}}},
      {"input needing gradients", {x.clone().requires_grad_(), {w, {}}}},
  };
  for (const auto& [what, operands] : refused) {
    EXPECT_FALSE(widened_gemm_applies(operands.first, operands.second)) << what;
    EXPECT_THROW(widened_gemm(operands.first, operands.second), sf::ShapeError) << what;
  }
}

}  // namespace
