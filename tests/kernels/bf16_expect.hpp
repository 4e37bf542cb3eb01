#pragma once
// Expectations shared by the tests of the bf16 kernels (small_gemm with bf16 weights, amx_gemm): the
// arithmetic of a bf16 matmul, x and the weights rounded to bf16, the products summed in float32 and
// each sum rounded to bf16 before the bias is added.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace sf::test {

inline torch::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::kFloat32);
}

// round_bf16(x · wᵀ) + bias in float32, x as given, w [N,K] bf16.
inline torch::Tensor rounded_product(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  torch::Tensor y = torch::linear(x, w.to(torch::kFloat32)).to(torch::kBFloat16).to(torch::kFloat32);
  return bias.defined() ? y + bias : y;
}

// The share of y equal to `expected`; every other element within one bf16 step of it (a sum that
// the kernel's order of summation rounds to the neighbouring bf16 value), or, for a sum near zero,
// within float32 rounding of the K terms.
inline double share_equal(const torch::Tensor& y, const torch::Tensor& expected, const torch::Tensor& bias, int64_t K) {
  EXPECT_EQ(y.sizes(), expected.sizes());
  const torch::Tensor unbiased = bias.defined() ? expected - bias : expected;
  const torch::Tensor step = unbiased.abs() * (1.0 / 128) + 2e-5 * std::sqrt(static_cast<double>(K));
  EXPECT_TRUE((y - expected).abs().le(step).all().item<bool>());
  return y.eq(expected).to(torch::kFloat64).mean().item<double>();
}

}  // namespace sf::test
