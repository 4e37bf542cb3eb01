#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>

#include "kernels/isa.hpp"
#include "kernels/topk.hpp"

namespace {

using sf::kernels::Isa;
using sf::kernels::RowTopK;

// The canonical top-k by a stable descending sort: equal values keep their ascending indices.
RowTopK by_sort(const torch::Tensor& x, int64_t k) {
  auto [v, i] = torch::sort(x, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  return {v.narrow(1, 0, k), i.narrow(1, 0, k)};
}

// The kernel with the scan of each instruction set this CPU has (an AVX-512 CPU runs both).
class TopKRows : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!sf::kernels::cpu_has(GetParam())) GTEST_SKIP() << "this CPU has no " << sf::kernels::isa_name(GetParam());
  }
  static bool topk_rows(const torch::Tensor& x, int64_t k, RowTopK& out) {
    return sf::kernels::topk_rows(x, k, out, GetParam());
  }
};

std::string isa_label(const ::testing::TestParamInfo<Isa>& info) { return sf::kernels::isa_name(info.param); }

INSTANTIATE_TEST_SUITE_P(Isas, TopKRows, ::testing::Values(Isa::kAvx512, Isa::kAvx2), isa_label);

// Distinct values, many ties (integers of a small range, as bf16 logits tie), rising rows (every
// element raises the threshold), -inf and +inf, every tail of the 8- and 16-wide steps, k from 1 to V.
TEST_P(TopKRows, EqualsTheStableSortForTiesInfinitiesAndEveryShape) {
  const auto gen = [](uint64_t s) { return at::detail::createCPUGenerator(s); };
  uint64_t seed = 0;
  for (int64_t V : {1, 15, 16, 17, 100, 1000, 49152 + 7}) {
    for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{16}, int64_t{100}, V}) {
      if (k > V) continue;
      const torch::Tensor normal = torch::randn({5, V}, gen(++seed));
      const torch::Tensor ties = torch::randint(0, 7, {5, V}, gen(++seed)).to(torch::kFloat32);
      const torch::Tensor rising = torch::arange(V, torch::kFloat32).repeat({3, 1});
      torch::Tensor inf = torch::randn({4, V}, gen(++seed));
      inf.index_put_({torch::rand({4, V}, gen(++seed)) < 0.3}, -std::numeric_limits<float>::infinity());
      inf.index_put_({torch::rand({4, V}, gen(++seed)) < 0.01}, std::numeric_limits<float>::infinity());
      for (const torch::Tensor& x : {normal, ties, rising, inf}) {
        RowTopK got;
        ASSERT_TRUE(topk_rows(x, k, got)) << "V=" << V << " k=" << k;
        const RowTopK want = by_sort(x, k);
        EXPECT_TRUE(got.values.equal(want.values)) << "V=" << V << " k=" << k;
        EXPECT_TRUE(got.ids.equal(want.ids)) << "V=" << V << " k=" << k;
      }
    }
  }
}

TEST_P(TopKRows, SplitsRowsOverThreadsAsOneThreadDoes) {
  const torch::Tensor x = torch::randint(0, 50, {37, 5000}, at::detail::createCPUGenerator(9)).to(torch::kFloat32);
  const int threads = at::get_num_threads();
  RowTopK one, two;
  at::set_num_threads(1);
  ASSERT_TRUE(topk_rows(x, 100, one));
  at::set_num_threads(2);
  ASSERT_TRUE(topk_rows(x, 100, two));
  at::set_num_threads(threads);
  EXPECT_TRUE(one.ids.equal(two.ids));
  EXPECT_TRUE(one.ids.equal(by_sort(x, 100).ids));
}

TEST_P(TopKRows, LeavesNaNRowsAndOtherOperandsToTorch) {
  torch::Tensor x = torch::randn({3, 300}, at::detail::createCPUGenerator(10));
  RowTopK out;
  x[1][250] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(topk_rows(x, 10, out)) << "a NaN after the first k";
  x[1][250] = 0;
  x[2][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(topk_rows(x, 10, out)) << "a NaN among the first k";
  EXPECT_FALSE(out.values.defined());
  x[2][3] = 0;
  EXPECT_FALSE(topk_rows(x.to(torch::kBFloat16), 10, out)) << "not float32";
  EXPECT_FALSE(topk_rows(x.t(), 2, out)) << "not contiguous";
  EXPECT_FALSE(topk_rows(x, 301, out)) << "k > V";
  EXPECT_FALSE(topk_rows(x, 0, out)) << "k = 0";
  EXPECT_TRUE(topk_rows(x, 300, out));
}

}  // namespace
