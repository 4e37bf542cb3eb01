#include <gtest/gtest.h>
#include <torch/torch.h>

#include "bf16_expect.hpp"
#include "core/error.hpp"
#include "kernels/small_gemm.hpp"

namespace sf::kernels {
// The instruction set by name in test output.
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace sf::kernels

namespace {

using sf::kernels::Bf16Sums;
using sf::kernels::Isa;
using sf::kernels::Projection;

using sf::test::normal;
using sf::test::share_equal;

// Largest difference from torch::linear relative to the size of the terms summed (sqrt(K) for unit
// normal entries): rounding alone stays near 1e-7, a wrong product or index is of order 1.
double error_vs_linear(const torch::Tensor& x, const Projection& p, const torch::Tensor& y) {
  const torch::Tensor expected = torch::linear(x, p.weight, p.bias);
  EXPECT_EQ(y.sizes(), expected.sizes());
  return (y - expected).abs().max().item<double>() / std::sqrt(static_cast<double>(x.size(-1)));
}

// Restores torch's thread count, which the tests change.
class ThreadsRestored : public ::testing::Test {
 protected:
  void SetUp() override { threads_ = at::get_num_threads(); }
  void TearDown() override {
    if (threads_ > 0) at::set_num_threads(threads_);
  }
  int threads_ = 0;
};

// The kernel with the tiles of each instruction set this CPU has (an AVX-512 CPU runs both).
class SmallGemm : public ThreadsRestored, public ::testing::WithParamInterface<Isa> {
 protected:
  void SetUp() override {
    if (!sf::kernels::cpu_has(GetParam())) GTEST_SKIP() << "this CPU has no " << sf::kernels::isa_name(GetParam());
    ThreadsRestored::SetUp();
  }
  static bool applies(const torch::Tensor& x, const Projection& p, Bf16Sums sums = Bf16Sums::kWidened) {
    return sf::kernels::small_gemm_applies(x, p, sums, GetParam());
  }
  static std::vector<torch::Tensor> gemm(const torch::Tensor& x, const std::vector<Projection>& ps,
                                         Bf16Sums sums = Bf16Sums::kWidened) {
    return sf::kernels::small_gemm(x, ps, sums, GetParam());
  }
};

std::string isa_label(const ::testing::TestParamInfo<Isa>& info) { return sf::kernels::isa_name(info.param); }

INSTANTIATE_TEST_SUITE_P(Isas, SmallGemm, ::testing::Values(Isa::kAvx512, Isa::kAvx2), isa_label);

TEST_P(SmallGemm, EqualsLinearForEveryRowCountAndRaggedShapes) {
  uint64_t seed = 1;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 16, 31, 32, 64}) {
      if (M > sf::kernels::small_gemm_max_rows(GetParam())) continue;
      for (int64_t K : {1, 7, 8, 9, 15, 16, 17, 100, 576}) {
        for (int64_t N : {1, 3, 4, 5, 17, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const Projection p{normal({N, K}, ++seed), {}};
          ASSERT_TRUE(applies(x, p));
          EXPECT_LT(error_vs_linear(x, p, gemm(x, {p})[0]), 2e-5) << "M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

TEST_P(SmallGemm, SeveralProjectionsWithBiasesAtOnceEqualEachAlone) {
  const torch::Tensor x = normal({2, 3, 64}, 7);  // [B,T,K]: 6 rows
  const std::vector<Projection> ps{
      {normal({96, 64}, 8), normal({96}, 9)}, {normal({32, 64}, 10), {}}, {normal({35, 64}, 11), normal({35}, 12)}};
  at::set_num_threads(2);
  const std::vector<torch::Tensor> ys = gemm(x, ps);
  ASSERT_EQ(ys.size(), 3u);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(ys[i].sizes(), (std::vector<int64_t>{2, 3, ps[i].weight.size(0)}));
    EXPECT_LT(error_vs_linear(x, ps[i], ys[i]), 2e-5) << "projection " << i;
  }
}

TEST_P(SmallGemm, ALargeVocabularyProjectionSplitOverThreads) {
  const torch::Tensor x = normal({16, 576}, 13);
  const Projection lm_head{normal({4099, 576}, 14), {}};
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    EXPECT_LT(error_vs_linear(x, lm_head, gemm(x, {lm_head})[0]), 2e-5) << threads << " threads";
  }
}

TEST_P(SmallGemm, InputsOutsideTheKernelAreNotTakenAndAreRefused) {
  const torch::Tensor x = normal({4, 32}, 15), w = normal({8, 32}, 16);
  EXPECT_TRUE(applies(x, {w, normal({8}, 17)}));
  const std::vector<std::pair<std::string, std::pair<torch::Tensor, Projection>>> refused{
      {"one row too many", {normal({sf::kernels::small_gemm_max_rows(GetParam()) + 1, 32}, 18), {w, {}}}},
      {"bfloat16 input", {x.to(torch::kBFloat16), {w, {}}}},
      {"float64 weight", {x, {w.to(torch::kFloat64), {}}}},
      {"transposed weight", {x, {normal({32, 8}, 19).t(), {}}}},
      {"other K", {x, {normal({8, 31}, 20), {}}}},
      {"bias of other length", {x, {w, normal({7}, 21)}}},
      {"weight needing gradients", {x, {w.clone().requires_grad_(), {}}}},
  };
  for (const auto& [what, operands] : refused) {
    EXPECT_FALSE(applies(operands.first, operands.second)) << what;
    EXPECT_THROW(gemm(operands.first, {operands.second}), sf::ShapeError) << what;
  }
  if (GetParam() == Isa::kAvx2) {
    const Projection bf16{w.to(torch::kBFloat16), {}};
    EXPECT_FALSE(applies(x, bf16, Bf16Sums::kNative)) << "native bf16 sums need AVX-512 BF16";
    EXPECT_THROW(gemm(x, {bf16}, Bf16Sums::kNative), sf::ShapeError);
  }
}

}  // namespace

// bf16 weights: the product of x rounded to bf16 and the weights, summed in float32 and rounded to
// bf16 before the bias (the arithmetic of the bf16 matmul the prompt passes use), for every tail
// length of the 32-wide steps.
class SmallGemmBf16 : public ThreadsRestored {
 protected:
  void SetUp() override {
    if (!sf::kernels::small_gemm_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    ThreadsRestored::SetUp();
  }
  static bool applies(const torch::Tensor& x, const Projection& p) {
    return sf::kernels::small_gemm_applies(x, p, Bf16Sums::kNative, Isa::kAvx512);
  }
  static torch::Tensor gemm(const torch::Tensor& x, const Projection& p) {
    return sf::kernels::small_gemm(x, {p}, Bf16Sums::kNative, Isa::kAvx512)[0];
  }
};

// round_bf16(x · wᵀ) + bias in float32, x as given.
torch::Tensor rounded_product(const torch::Tensor& x, const Projection& p) {
  return sf::test::rounded_product(x, p.weight, p.bias);
}

TEST_F(SmallGemmBf16, EqualsTheRoundedProductOfRoundedOperandsForRaggedShapes) {
  uint64_t seed = 100;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 2, 7, 8, 9, 16, 33, 64}) {
      for (int64_t K : {1, 2, 31, 32, 33, 63, 100, 576}) {
        for (int64_t N : {1, 3, 5, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const Projection p{normal({N, K}, ++seed).to(torch::kBFloat16), normal({N}, ++seed)};
          ASSERT_TRUE(applies(x, p));
          const torch::Tensor y = gemm(x, p);
          EXPECT_EQ(y.scalar_type(), torch::kFloat32);
          const torch::Tensor xr = x.to(torch::kBFloat16).to(torch::kFloat32);
          EXPECT_GE(share_equal(y, rounded_product(xr, p), p.bias, K), 0.97) << "M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

TEST_F(SmallGemmBf16, RoundsTheInputRowsAsTheWeights) {
  // x with bits below bf16's precision: the kernel's results are those of the rounded x, and a
  // good share of them differ from those of x as given.
  const torch::Tensor x = normal({16, 256}, 200) * (1 + 1.0 / 512);
  const Projection p{normal({256, 256}, 201).to(torch::kBFloat16), {}};
  const torch::Tensor y = gemm(x, p);
  EXPECT_GE(share_equal(y, rounded_product(x.to(torch::kBFloat16).to(torch::kFloat32), p), p.bias, 256), 0.99);
  EXPECT_LE(y.eq(rounded_product(x, p)).to(torch::kFloat64).mean().item<double>(), 0.95);
}

TEST_F(SmallGemmBf16, WeightsOfMixedDtypesInOneCallAreRefused) {
  const torch::Tensor x = normal({4, 64}, 300);
  const Projection f32{normal({8, 64}, 301), {}}, bf16{normal({8, 64}, 302).to(torch::kBFloat16), {}};
  EXPECT_TRUE(applies(x, f32));
  EXPECT_TRUE(applies(x, bf16));
  EXPECT_THROW(sf::kernels::small_gemm(x, {f32, bf16}, Bf16Sums::kNative, Isa::kAvx512), sf::ShapeError);
  EXPECT_FALSE(applies(x.to(torch::kBFloat16), bf16)) << "x must be float32";
}

// The same arithmetic summed the other way (Bf16Sums::kWidened: both operands widened to float32,
// float32 FMAs), as CPUs without AVX-512 BF16 run it, on either instruction set's tiles.
class SmallGemmWidened : public SmallGemm {
 protected:
  void SetUp() override {
    SmallGemm::SetUp();
    if (!sf::kernels::small_gemm_bf16_supported(Bf16Sums::kWidened, GetParam()))
      GTEST_SKIP() << "this CPU cannot widen bf16 with " << sf::kernels::isa_name(GetParam());
  }
};

INSTANTIATE_TEST_SUITE_P(Isas, SmallGemmWidened, ::testing::Values(Isa::kAvx512, Isa::kAvx2), isa_label);

TEST_P(SmallGemmWidened, EqualsTheRoundedProductOfRoundedOperandsForRaggedShapes) {
  uint64_t seed = 400;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 2, 5, 6, 7, 8, 9, 13, 16, 32, 33, 64}) {
      if (M > sf::kernels::small_gemm_max_rows(GetParam())) continue;
      for (int64_t K : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 576}) {
        for (int64_t N : {1, 3, 5, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const Projection p{normal({N, K}, ++seed).to(torch::kBFloat16), normal({N}, ++seed)};
          ASSERT_TRUE(applies(x, p));
          const torch::Tensor y = gemm(x, {p})[0];
          EXPECT_EQ(y.scalar_type(), torch::kFloat32);
          const torch::Tensor xr = x.to(torch::kBFloat16).to(torch::kFloat32);
          EXPECT_GE(share_equal(y, rounded_product(xr, p), p.bias, K), 0.97) << "M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

TEST_P(SmallGemmWidened, RoundsTheInputRowsAsTheWeights) {
  const torch::Tensor x = normal({16, 256}, 500) * (1 + 1.0 / 512);
  const Projection p{normal({256, 256}, 501).to(torch::kBFloat16), {}};
  const torch::Tensor y = gemm(x, {p})[0];
  EXPECT_GE(share_equal(y, rounded_product(x.to(torch::kBFloat16).to(torch::kFloat32), p), p.bias, 256), 0.99);
  EXPECT_LE(y.eq(rounded_product(x, p)).to(torch::kFloat64).mean().item<double>(), 0.95);
}

TEST_P(SmallGemmWidened, SeveralProjectionsAtOnceEqualEachAloneAndTheNativeSums) {
  const torch::Tensor x = normal({3, 5, 96}, 600);  // [B,T,K]: 15 rows
  const std::vector<Projection> ps{{normal({96, 96}, 601).to(torch::kBFloat16), normal({96}, 602)},
                                   {normal({40, 96}, 603).to(torch::kBFloat16), {}}};
  at::set_num_threads(2);
  const std::vector<torch::Tensor> together = gemm(x, ps);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(together[i].equal(gemm(x, {ps[i]})[0])) << "projection " << i;
    if (sf::kernels::small_gemm_bf16_supported(Bf16Sums::kNative, Isa::kAvx512)) {
      const torch::Tensor native = sf::kernels::small_gemm(x, {ps[i]}, Bf16Sums::kNative, Isa::kAvx512)[0];
      EXPECT_GE(share_equal(together[i], native, ps[i].bias, 96), 0.97) << "projection " << i;
    }
  }
}
