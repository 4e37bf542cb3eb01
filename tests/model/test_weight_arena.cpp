#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

#include "model/weight_arena.hpp"

namespace {

using sf::model::pack_into_huge_pages;

torch::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::kFloat32);
}

TEST(WeightArena, CopiesKeepTheirValuesAndShareOneAlignedAllocation) {
  // 3 MiB in all, with sizes that are not multiples of 64 bytes, a bf16 tensor and a strided one.
  torch::Tensor a = normal({1000, 700}, 1), b = normal({7, 3}, 2), c = normal({333}, 3).to(torch::kBFloat16),
                d = normal({300, 200}, 4).t(), undefined;
  const torch::Tensor a0 = a.clone(), b0 = b.clone(), c0 = c.clone(), d0 = d.clone();
  pack_into_huge_pages({&a, &b, &undefined, &c, &d});
  EXPECT_FALSE(undefined.defined());
  for (auto [t, t0] : {std::pair{&a, &a0}, {&b, &b0}, {&c, &c0}, {&d, &d0}}) {
    EXPECT_TRUE(torch::equal(*t, *t0));
    EXPECT_EQ(t->sizes(), t0->sizes());
    EXPECT_EQ(t->scalar_type(), t0->scalar_type());
    EXPECT_TRUE(t->is_contiguous());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data_ptr()) % 64, 0u);
  }
  // One arena, 2 MiB aligned, in the order given.
  const auto at = [](const torch::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); };
  EXPECT_EQ(at(a) % (uintptr_t{2} << 20), 0u);
  EXPECT_EQ(at(b), at(a) + a.nbytes());  // 2,800,000 bytes: a multiple of 64
  EXPECT_GT(at(c), at(b));
  EXPECT_LT(at(d) - at(a), uintptr_t{4} << 20);
}

TEST(WeightArena, TheArenaLivesAsLongAsAnyCopy) {
  torch::Tensor a = normal({1024, 1024}, 5), b = normal({1024, 1024}, 6);
  const torch::Tensor b0 = b.clone();
  pack_into_huge_pages({&a, &b});
  a = torch::Tensor();  // the first copy is gone; the arena is still held by b
  const torch::Tensor filler = torch::full({1024, 1024}, 7.0f);
  EXPECT_TRUE(torch::equal(b, b0));
}

TEST(WeightArena, LessThanOnePageIsLeftWhereItIs) {
  torch::Tensor small = normal({100, 100}, 7);
  const void* before = small.data_ptr();
  pack_into_huge_pages({&small});
  EXPECT_EQ(small.data_ptr(), before);
}

}  // namespace
