#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/attention.hpp"
#include "kernels/isa.hpp"

namespace {

using sf::kernels::Isa;

torch::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::kFloat32);
}

// The matmul / masked softmax / matmul path of CausalLM::forward, written out with torch ops.
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1), L = k.size(2);
  const torch::Tensor kr = k.repeat_interleave(H / KV, 1), vr = v.repeat_interleave(H / KV, 1);  // [B,H,L,D]
  torch::Tensor scores = torch::matmul(q, kr.transpose(-1, -2)) * scale;                         // [B,H,T,L]
  scores = scores.masked_fill(allowed.logical_not().view({B, 1, T, L}), std::numeric_limits<float>::lowest());
  return torch::matmul(torch::softmax(scores, -1), vr).transpose(1, 2).reshape({B, T, H * D});
}

// The kernel with the arithmetic of each instruction set this CPU has (an AVX-512 CPU runs both).
class Attention : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!sf::kernels::cpu_has(GetParam())) GTEST_SKIP() << "this CPU has no " << sf::kernels::isa_name(GetParam());
  }
  static bool applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& allowed, const torch::Tensor& present = {}) {
    return sf::kernels::attention_applies(q, k, v, allowed, present, GetParam());
  }
  static torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& allowed, double scale, const torch::Tensor& present = {}) {
    return sf::kernels::attention(q, k, v, allowed, scale, present, GetParam());
  }
  static void exp16(const float* x, float* y) { sf::kernels::exp16(x, y, GetParam()); }
};

std::string isa_label(const ::testing::TestParamInfo<Isa>& info) { return sf::kernels::isa_name(info.param); }

INSTANTIATE_TEST_SUITE_P(Isas, Attention, ::testing::Values(Isa::kAvx512, Isa::kAvx2), isa_label);

// What a mask holds besides causality.
enum class Extra { kNone, kHoles, kWindow };

// Causal masks over a padded batch ending at the last query (past positions in a cache before the
// T new ones); with random holes, or a sliding window of 7 keys (each query's first allowed key
// differs), or nothing more (every row then allows all keys up to its query, the kernels' unmasked
// path); the second row left padded (its first L/3 keys masked, which the kernels skip), and one
// row with nothing allowed.
torch::Tensor masks(int64_t B, int64_t T, int64_t L, uint64_t seed, Extra extra) {
  const torch::Tensor q_idx = torch::arange(L - T, L).unsqueeze(1), k_idx = torch::arange(0, L).unsqueeze(0);
  torch::Tensor allowed = (k_idx <= q_idx).unsqueeze(0).repeat({B, 1, 1});  // [B,T,L]
  if (extra == Extra::kHoles)
    allowed = allowed.logical_and(torch::rand({B, 1, L}, at::detail::createCPUGenerator(seed)) > 0.3);
  if (extra == Extra::kWindow) allowed = allowed.logical_and((k_idx > q_idx - 7).unsqueeze(0));
  allowed[1].narrow(1, 0, L / 3).fill_(false);
  allowed.select(1, T - 1).select(1, L - 1).fill_(true);
  allowed[B - 1][0].fill_(false);
  return allowed;
}

// Both ways of the kernel: a query row (query head, position) at a time where there are few of
// them (decoding: T · H / KV < 12), blocks of 12 rows against transposed keys otherwise (T = 4 with
// 3 query heads per KV head is exactly one block; T = 70 over L = 300 is many, with keys in the
// cache before them and L not a multiple of the 32-key panels). Head dimensions in whole and
// partial groups of 64 (80, 256).
TEST_P(Attention, EqualsTheMaskedSoftmaxPathOnCacheViews) {
  uint64_t seed = 100;
  for (int64_t D : {16, 64, 80, 128, 256}) {
    for (auto [T, L] :
         {std::pair<int64_t, int64_t>{1, 1}, {1, 17}, {1, 100}, {3, 3}, {4, 4}, {5, 16}, {33, 40}, {70, 300}}) {
      for (auto [H, KV] : {std::pair<int64_t, int64_t>{9, 3}, {4, 4}, {8, 1}}) {
        for (Extra extra : {Extra::kNone, Extra::kHoles, Extra::kWindow}) {
          const int64_t B = 3;
          // q as the model makes it ([B,T,H,D] transposed), k/v as views of a longer cache buffer.
          const torch::Tensor q = normal({B, T, H, D}, ++seed).transpose(1, 2);
          const torch::Tensor k = normal({B, KV, L + 7, D}, ++seed).narrow(2, 0, L);
          const torch::Tensor v = normal({B, KV, L + 7, D}, ++seed).narrow(2, 0, L);
          const torch::Tensor allowed = masks(B, T, L, ++seed, extra);
          ASSERT_TRUE(applies(q, k, v, allowed));
          const double scale = 1.0 / std::sqrt(static_cast<double>(D));
          for (int threads : {1, 2}) {
            at::set_num_threads(threads);
            const torch::Tensor got = attention(q, k, v, allowed, scale);
            const torch::Tensor want = reference(q, k, v, allowed, scale);
            ASSERT_EQ(got.sizes(), want.sizes());
            EXPECT_LT((got - want).abs().max().item<double>(), 2e-6)
                << "D=" << D << " T=" << T << " L=" << L << " H=" << H << " KV=" << KV << " threads=" << threads
                << " extra=" << static_cast<int>(extra);
          }
        }
      }
    }
  }
}

// Positions that hold no query (a padded batch's padding) are skipped: their rows are zeros, and
// the other rows are those of the call without `present`, bit for bit (the keys a block reads start
// at the same multiple of the panel; masked keys add exact zeros). Left padding (the first positions
// absent, their keys masked), right padding (the last positions absent) and scattered holes, in
// both ways of the kernel.
TEST_P(Attention, AbsentQueriesAreZerosAndTheOthersUnchanged) {
  uint64_t seed = 500;
  for (auto [T, L] : {std::pair<int64_t, int64_t>{1, 9}, {3, 20}, {40, 40}, {70, 300}}) {
    const int64_t B = 4, H = 9, KV = 3, D = 64;
    const torch::Tensor q = normal({B, T, H, D}, ++seed).transpose(1, 2);
    const torch::Tensor k = normal({B, KV, L, D}, ++seed), v = normal({B, KV, L, D}, ++seed);
    const torch::Tensor q_idx = torch::arange(L - T, L).unsqueeze(1), k_idx = torch::arange(0, L).unsqueeze(0);
    torch::Tensor allowed = (k_idx <= q_idx).unsqueeze(0).repeat({B, 1, 1});  // [B,T,L]
    torch::Tensor present = torch::ones({B, T}, torch::kBool);
    // Row 0 left padded by T/2 + 1 (its padding's keys masked for every query), row 1 right padded,
    // row 2 with holes, row 3 whole.
    const int64_t pad = T / 2 + 1;
    present[0].narrow(0, 0, std::min(pad, T)).fill_(false);
    allowed[0].narrow(1, L - T, std::min(pad, T)).fill_(false);
    present[1].narrow(0, T - std::min(pad, T), std::min(pad, T)).fill_(false);
    present[2] = torch::rand({T}, at::detail::createCPUGenerator(++seed)) > 0.4;
    const double scale = 0.125;
    for (int threads : {1, 2}) {
      at::set_num_threads(threads);
      ASSERT_TRUE(applies(q, k, v, allowed, present));
      const torch::Tensor got = attention(q, k, v, allowed, scale, present);  // [B,T,H*D]
      const torch::Tensor all = attention(q, k, v, allowed, scale);
      const torch::Tensor held = present.unsqueeze(-1).expand_as(got);
      EXPECT_TRUE(torch::equal(got.masked_select(held), all.masked_select(held))) << "T=" << T << " L=" << L;
      EXPECT_EQ(got.masked_select(held.logical_not()).abs().sum().item<double>(), 0.0) << "T=" << T << " L=" << L;
    }
  }
}

TEST_P(Attention, OtherOperandsAreNotTakenAndAreRefused) {
  const torch::Tensor q = normal({2, 4, 1, 16}, 1), k = normal({2, 2, 5, 16}, 2), v = normal({2, 2, 5, 16}, 3);
  const torch::Tensor allowed = torch::ones({2, 1, 5}, torch::kBool);
  EXPECT_TRUE(applies(q, k, v, allowed));
  const std::vector<std::pair<std::string, std::vector<torch::Tensor>>> refused{
      {"mask for one query, two queries", {normal({2, 4, 2, 16}, 4), k, v, allowed}},
      {"head_dim 8", {normal({2, 4, 1, 8}, 5), normal({2, 2, 5, 8}, 6), normal({2, 2, 5, 8}, 7), allowed}},
      {"3 query heads over 2 KV heads", {normal({2, 3, 1, 16}, 8), k, v, allowed}},
      {"bfloat16", {q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16), allowed}},
      {"mask of other length", {q, k, v, torch::ones({2, 1, 4}, torch::kBool)}},
      {"float mask", {q, k, v, torch::ones({2, 1, 5})}},
      {"D not contiguous", {q, k.transpose(2, 3).contiguous().transpose(2, 3), v, allowed}},
  };
  for (const auto& [what, t] : refused) {
    EXPECT_FALSE(applies(t[0], t[1], t[2], t[3])) << what;
    EXPECT_THROW(attention(t[0], t[1], t[2], t[3], 0.25), sf::ShapeError) << what;
  }
  for (const torch::Tensor& present :
       {torch::ones({2, 2}, torch::kBool), torch::ones({2}, torch::kBool), torch::ones({2, 1}, torch::kInt64)}) {
    EXPECT_FALSE(applies(q, k, v, allowed, present)) << present.sizes();
    EXPECT_THROW(attention(q, k, v, allowed, 0.25, present), sf::ShapeError) << present.sizes();
  }
}

TEST_P(Attention, ExpIsWithinTwoUlpOfStdExpAndUnderflowsToZero) {
  std::vector<float> x(16), y(16);
  double worst = 0;
  for (int i = 0; i < 200000; i += 16) {
    for (int l = 0; l < 16; ++l) x[static_cast<size_t>(l)] = -87.0f + 175.0f * static_cast<float>(i + l) / 200000.0f;
    exp16(x.data(), y.data());
    for (size_t l = 0; l < 16; ++l) {
      const double want = std::exp(static_cast<double>(x[l]));
      worst = std::max(worst, std::abs(y[l] - want) / want);
    }
  }
  EXPECT_LT(worst, 2.5e-7);  // 2 ulp of float is 2.4e-7 relative
  std::fill(x.begin(), x.end(), -88.5f);
  x[1] = std::numeric_limits<float>::lowest();
  x[2] = -1e30f;
  exp16(x.data(), y.data());
  for (float e : y) EXPECT_EQ(e, 0.0f);
}

// The instruction sets compute e^x with the same steps (AVX2 applies 2^n as two factors where AVX-512
// has scalef): the same floats, bit for bit, including subnormal results and underflow.
TEST(AttentionExp, TheSameOnBothInstructionSets) {
  if (!sf::kernels::cpu_has(Isa::kAvx512)) GTEST_SKIP() << "this CPU has no avx512";
  std::vector<float> x(16), wide(16), narrow(16);
  for (int i = 0; i < 400000; i += 16) {
    for (int l = 0; l < 16; ++l) x[static_cast<size_t>(l)] = -90.0f + 179.0f * static_cast<float>(i + l) / 400000.0f;
    sf::kernels::exp16(x.data(), wide.data(), Isa::kAvx512);
    sf::kernels::exp16(x.data(), narrow.data(), Isa::kAvx2);
    for (size_t l = 0; l < 16; ++l) ASSERT_EQ(wide[l], narrow[l]) << "x = " << x[l];
  }
}

}  // namespace
