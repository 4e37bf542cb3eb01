#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/isa.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/rope.hpp"

namespace {

torch::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::kFloat32);
}

// transformers' LlamaRMSNorm and apply_rotary_pos_emb, written out with torch ops.
torch::Tensor reference_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

torch::Tensor reference_rope(const torch::Tensor& x, int64_t heads, const torch::Tensor& c, const torch::Tensor& s) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2) / heads, half = D / 2;
  const torch::Tensor xh = x.view({B, T, heads, D});
  const torch::Tensor cos = torch::cat({c, c}, -1).unsqueeze(2), sin = torch::cat({s, s}, -1).unsqueeze(2);
  const torch::Tensor rotated = torch::cat({-xh.narrow(-1, half, half), xh.narrow(-1, 0, half)}, -1);
  return (xh * cos + rotated * sin).view({B, T, heads * D});
}

using sf::kernels::Isa;

// The kernels with the arithmetic of each instruction set this CPU has (an AVX-512 CPU runs both).
class Fused : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!sf::kernels::cpu_has(GetParam())) GTEST_SKIP() << "this CPU has no " << sf::kernels::isa_name(GetParam());
  }
  static bool norm_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& delta = {}) {
    return sf::kernels::rms_norm_applies(x, w, delta, GetParam());
  }
  static torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
    return sf::kernels::rms_norm(x, w, eps, GetParam());
  }
  static torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& d, const torch::Tensor& w, double eps) {
    return sf::kernels::add_rms_norm(x, d, w, eps, GetParam());
  }
  static bool rope_applies(const torch::Tensor& x, int64_t heads, const torch::Tensor& c, const torch::Tensor& s) {
    return sf::kernels::rope_applies(x, heads, c, s, GetParam());
  }
  static void rope_(const std::vector<sf::kernels::Rotated>& xs, const torch::Tensor& c, const torch::Tensor& s) {
    sf::kernels::rope_(xs, c, s, GetParam());
  }
  torch::InferenceMode guard;
};

std::string isa_label(const ::testing::TestParamInfo<Isa>& info) { return sf::kernels::isa_name(info.param); }

INSTANTIATE_TEST_SUITE_P(Isas, Fused, ::testing::Values(Isa::kAvx512, Isa::kAvx2), isa_label);

TEST_P(Fused, RmsNormEqualsTheTorchOpsForRaggedWidthsAndManyRows) {
  uint64_t seed = 1;
  for (int64_t n : {1, 7, 16, 33, 576, 1000}) {
    for (int64_t rows : {1, 3, 16, 300}) {
      const torch::Tensor x = normal({rows, n}, ++seed) * 3, w = normal({n}, ++seed);
      const torch::Tensor y = rms_norm(x, w, 1e-5);
      EXPECT_TRUE(torch::allclose(y, reference_norm(x, w, 1e-5), 1e-5, 1e-5)) << n << " x " << rows;
    }
  }
}

TEST_P(Fused, AddRmsNormUpdatesTheResidualInPlaceAndNormalisesTheSum) {
  const torch::Tensor x0 = normal({2, 5, 576}, 11), d = normal({2, 5, 576}, 12), w = normal({576}, 13);
  torch::Tensor x = x0.clone();
  const void* storage = x.data_ptr();
  const torch::Tensor y = add_rms_norm(x, d, w, 1e-6);
  EXPECT_EQ(x.data_ptr(), storage);
  EXPECT_TRUE(torch::allclose(x, x0 + d, 0, 0));
  EXPECT_TRUE(torch::allclose(y, reference_norm(x0 + d, w, 1e-6), 1e-5, 1e-5));
  EXPECT_EQ(y.sizes(), x0.sizes());
}

TEST_P(Fused, RopeEqualsRotateHalfForEveryHeadLayout) {
  uint64_t seed = 20;
  for (int64_t D : {2, 16, 22, 64, 80, 128}) {
    for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {16, 1}, {3, 37}}) {
      const torch::Tensor angles = normal({B, T, D / 2}, ++seed) * 50;
      const torch::Tensor c = angles.cos(), s = angles.sin();
      const torch::Tensor q0 = normal({B, T, 9 * D}, ++seed), k0 = normal({B, T, 3 * D}, ++seed);
      torch::Tensor q = q0.clone(), k = k0.clone();
      rope_({{q, 9}, {k, 3}}, c, s);
      EXPECT_TRUE(torch::allclose(q, reference_rope(q0, 9, c, s), 1e-5, 1e-5)) << D << " " << B << "x" << T;
      EXPECT_TRUE(torch::allclose(k, reference_rope(k0, 3, c, s), 1e-5, 1e-5)) << D << " " << B << "x" << T;
    }
  }
}

TEST_P(Fused, OtherOperandsAreNotTakenAndAreRefused) {
  const torch::Tensor x = normal({4, 8}, 1), w = normal({8}, 2);
  EXPECT_TRUE(norm_applies(x, w));
  EXPECT_FALSE(norm_applies(x.t(), normal({4}, 3)));     // not contiguous
  EXPECT_FALSE(norm_applies(x.to(torch::kFloat64), w));  // dtype
  EXPECT_FALSE(norm_applies(x, normal({7}, 3)));         // width
  EXPECT_FALSE(norm_applies(x, w, normal({4, 7}, 3)));   // delta shape
  EXPECT_THROW(rms_norm(x, normal({7}, 3), 1e-5), sf::ShapeError);
  const torch::Tensor c = normal({2, 3, 4}, 4);
  EXPECT_TRUE(rope_applies(normal({2, 3, 16}, 5), 2, c, c));
  EXPECT_FALSE(rope_applies(normal({2, 3, 16}, 5), 3, c, c));                  // heads · D
  EXPECT_FALSE(rope_applies(normal({2, 4, 16}, 5), 2, c, c));                  // positions
  EXPECT_FALSE(rope_applies(normal({3, 2, 16}, 5).transpose(0, 1), 2, c, c));  // strides
  EXPECT_THROW(rope_({{normal({2, 3, 16}, 5), 3}}, c, c), sf::ShapeError);
  {
    c10::InferenceMode off(false);
    torch::AutoGradMode grad(true);
    EXPECT_FALSE(norm_applies(x, w));  // autograd keeps the torch ops
    EXPECT_FALSE(rope_applies(normal({2, 3, 16}, 5), 2, c, c));
  }
}

}  // namespace
