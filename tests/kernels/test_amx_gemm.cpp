#include <gtest/gtest.h>
#include <torch/torch.h>

#include "bf16_expect.hpp"
#include "core/error.hpp"
#include "kernels/amx_gemm.hpp"

namespace {

using sf::kernels::amx_gemm;
using sf::kernels::amx_pack;
using sf::kernels::AmxWeight;
using sf::test::normal;
using sf::test::rounded_product;
using sf::test::share_equal;

class AmxGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sf::kernels::amx_gemm_supported()) GTEST_SKIP() << "this CPU or OS has no AMX-BF16";
    threads_ = at::get_num_threads();
  }
  void TearDown() override {
    if (threads_ > 0) at::set_num_threads(threads_);
  }
  int threads_ = 0;
};

// The packed layout, element by element: tiles[n][k][r][2j + p] = W[16n + j][32k + 2r + p], zeros
// outside W (here N = 20, K = 40: two tiles each way, the second ones partly padding).
TEST(AmxPack, PutsEachWeightWhereTheTileUnitReadsIt) {
  const torch::Tensor w = torch::arange(20 * 40, torch::kFloat32).view({20, 40}).to(torch::kBFloat16);
  const AmxWeight p = amx_pack(w);
  EXPECT_EQ(p.out, 20);
  EXPECT_EQ(p.in, 40);
  ASSERT_EQ(p.tiles.sizes(), (std::vector<int64_t>{2, 2, 16, 32}));
  const torch::Tensor tiles = p.tiles.to(torch::kFloat32), weights = w.to(torch::kFloat32);
  const auto t = tiles.accessor<float, 4>();
  const auto v = weights.accessor<float, 2>();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t k = 0; k < 2; ++k)
      for (int64_t r = 0; r < 16; ++r)
        for (int64_t j = 0; j < 16; ++j)
          for (int64_t q = 0; q < 2; ++q) {
            const int64_t row = 16 * n + j, col = 32 * k + 2 * r + q;
            const float expected = row < 20 && col < 40 ? v[row][col] : 0.0f;
            ASSERT_EQ(t[n][k][r][2 * j + q], expected) << n << " " << k << " " << r << " " << j << " " << q;
          }
}

// Every tail: rows of x around the 16-row tiles, the 32-row pairs and the 128-row blocks of parallel
// work; inputs around the 32-wide steps; outputs around the 16-wide tiles and their pairs.
TEST_F(AmxGemm, EqualsTheRoundedProductOfRoundedOperandsForRaggedShapes) {
  uint64_t seed = 400;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 2, 15, 16, 17, 33, 128, 129, 300}) {
      for (int64_t K : {1, 31, 32, 33, 100, 576}) {
        for (int64_t N : {1, 15, 16, 17, 33, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed);
          const torch::Tensor w = normal({N, K}, ++seed).to(torch::kBFloat16), bias = normal({N}, ++seed);
          const AmxWeight p = amx_pack(w);
          const torch::Tensor y = amx_gemm(x, {{&p, bias}})[0];
          EXPECT_EQ(y.scalar_type(), torch::kFloat32);
          const torch::Tensor xr = x.to(torch::kBFloat16).to(torch::kFloat32);
          EXPECT_GE(share_equal(y, rounded_product(xr, w, bias), bias, K), 0.97)
              << "M=" << M << " K=" << K << " N=" << N << " threads=" << threads;
        }
      }
    }
  }
}

// The same arithmetic as the bf16 matmul of torch (oneDNN) that the model used before.
TEST_F(AmxGemm, AgreesWithTorchsBf16Matmul) {
  const torch::Tensor x = normal({2, 40, 576}, 500);  // [B,T,K]
  const torch::Tensor w = normal({1536, 576}, 501).to(torch::kBFloat16);
  const AmxWeight p = amx_pack(w);
  const torch::Tensor y = amx_gemm(x, {{&p, {}}})[0];
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 40, 1536}));
  const torch::Tensor expected = torch::linear(x.to(torch::kBFloat16), w).to(torch::kFloat32);
  EXPECT_GE(share_equal(y, expected, {}, 576), 0.97);
}

TEST_F(AmxGemm, SeveralProjectionsWithBiasesAtOnceEqualEachAlone) {
  const torch::Tensor x = normal({3, 7, 64}, 600);
  const torch::Tensor w1 = normal({48, 64}, 601).to(torch::kBFloat16), w2 = normal({17, 64}, 602).to(torch::kBFloat16);
  const torch::Tensor b2 = normal({17}, 603);
  const AmxWeight p1 = amx_pack(w1), p2 = amx_pack(w2);
  const auto both = amx_gemm(x, {{&p1, {}}, {&p2, b2}});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_TRUE(both[0].equal(amx_gemm(x, {{&p1, {}}})[0]));
  EXPECT_TRUE(both[1].equal(amx_gemm(x, {{&p2, b2}})[0]));
  EXPECT_EQ(both[1].sizes(), (std::vector<int64_t>{3, 7, 17}));
}

TEST_F(AmxGemm, RoundsTheInputRowsAsTheWeights) {
  // x with bits below bf16's precision: the results are those of the rounded x, and a good share of
  // them differ from those of x as given.
  const torch::Tensor x = normal({16, 256}, 700) * (1 + 1.0 / 512);
  const torch::Tensor w = normal({256, 256}, 701).to(torch::kBFloat16);
  const AmxWeight p = amx_pack(w);
  const torch::Tensor y = amx_gemm(x, {{&p, {}}})[0];
  EXPECT_GE(share_equal(y, rounded_product(x.to(torch::kBFloat16).to(torch::kFloat32), w, {}), {}, 256), 0.99);
  EXPECT_LE(y.eq(rounded_product(x, w, {})).to(torch::kFloat64).mean().item<double>(), 0.95);
}

// x as a view: rows further apart than K (a column slice) and a transposed matrix give the products
// of the same values laid out densely.
TEST_F(AmxGemm, StridedAndTransposedRowsEqualTheirDenseCopy) {
  const torch::Tensor w = normal({40, 70}, 900).to(torch::kBFloat16);
  const AmxWeight p = amx_pack(w);
  for (int64_t M : {3, 17, 200}) {
    const torch::Tensor wide = normal({M, 75}, 901 + M).narrow(1, 2, 70);  // row stride 75
    const torch::Tensor transposed = normal({70, M}, 902 + M).t();         // column stride M
    for (const torch::Tensor& x : {wide, transposed})
      EXPECT_TRUE(amx_gemm(x, {{&p, {}}})[0].equal(amx_gemm(x.contiguous(), {{&p, {}}})[0])) << "M=" << M;
  }
}

// The fused activation equals silu of the gate product times the up product, each as amx_gemm makes
// it, within the few ulp (5) by which its polynomial exp differs from torch's (Sleef's): for every tail
// of rows, inputs and outputs, 1 and 2 threads, and x's leading dimensions kept.
TEST_F(AmxGemm, SwigluEqualsSiluOfTheGateProductTimesTheUpProduct) {
  using sf::kernels::amx_swiglu;
  uint64_t seed = 1000;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t M : {1, 5, 16, 17, 33, 129, 300}) {
      for (int64_t K : {31, 64, 100}) {
        for (int64_t N : {1, 16, 17, 70}) {
          const torch::Tensor x = normal({M, K}, ++seed) * 2;
          const AmxWeight gate = amx_pack(normal({N, K}, ++seed)), up = amx_pack(normal({N, K}, ++seed));
          const torch::Tensor got = amx_swiglu(x, gate, up);
          ASSERT_EQ(got.sizes(), (std::vector<int64_t>{M, N}));
          const torch::Tensor want = torch::silu(amx_gemm(x, {{&gate, {}}})[0]) * amx_gemm(x, {{&up, {}}})[0];
          const double err = ((got - want).abs() / (want.abs() + 1e-30)).max().item<double>();
          EXPECT_LT(err, 6e-7) << "M=" << M << " K=" << K << " N=" << N << " threads=" << threads;
        }
      }
    }
  }
  const torch::Tensor x = normal({2, 9, 64}, 1100);
  const AmxWeight gate = amx_pack(normal({40, 64}, 1101)), up = amx_pack(normal({40, 64}, 1102));
  EXPECT_EQ(amx_swiglu(x, gate, up).sizes(), (std::vector<int64_t>{2, 9, 40}));
  const torch::Tensor big = torch::tensor({{-200.0f, -90.0f, -20.0f, -1.0f, 1.0f, 20.0f, 90.0f, 200.0f}});
  const AmxWeight one = amx_pack(torch::ones({1, 1}));
  const torch::Tensor silu_big = amx_swiglu(big.t().contiguous(), one, one).view({-1}) / big.view({-1});
  EXPECT_TRUE(torch::allclose(silu_big, torch::silu(big.view({-1})), 1e-6, 1e-30)) << "far tails: 0 and x";
}

TEST_F(AmxGemm, SwigluRefusesGateAndUpOfOtherShapes) {
  using sf::kernels::amx_swiglu;
  const AmxWeight gate = amx_pack(normal({8, 64}, 1200)), up = amx_pack(normal({8, 64}, 1201));
  EXPECT_THROW(amx_swiglu(normal({4, 64}, 1202), gate, amx_pack(normal({9, 64}, 1203))), sf::ShapeError);
  EXPECT_THROW(amx_swiglu(normal({4, 64}, 1204), gate, amx_pack(normal({8, 32}, 1205))), sf::ShapeError);
  EXPECT_THROW(amx_swiglu(normal({4, 63}, 1206), gate, up), sf::ShapeError) << "K differs";
  EXPECT_THROW(amx_swiglu(normal({4, 64}, 1207).to(torch::kBFloat16), gate, up), sf::ShapeError);
  EXPECT_THROW(amx_swiglu(normal({4, 64}, 1208), gate, AmxWeight{}), sf::ShapeError) << "not packed";
}

TEST_F(AmxGemm, OperandsThatDoNotFitAreRefused) {
  const AmxWeight p = amx_pack(normal({8, 64}, 800));
  EXPECT_THROW(amx_gemm(normal({4, 63}, 801), {{&p, {}}}), sf::ShapeError) << "K differs";
  EXPECT_THROW(amx_gemm(normal({4, 64}, 802), {{&p, normal({7}, 803)}}), sf::ShapeError) << "bias of 7 for 8 outputs";
  EXPECT_THROW(amx_gemm(normal({4, 64}, 804).to(torch::kBFloat16), {{&p, {}}}), sf::ShapeError) << "x not float32";
  EXPECT_THROW(amx_gemm(normal({4, 64}, 805), {{nullptr, {}}}), sf::ShapeError) << "no weight";
  EXPECT_THROW(amx_pack(normal({8}, 806)), sf::ShapeError) << "not a matrix";
}

}  // namespace
