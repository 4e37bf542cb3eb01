#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.hpp"
#include "model/causal_lm.hpp"

namespace {

using sf::model::KVCache;

// A cache of 4 rows, 6 positions filled of room for 10, in two layers.
KVCache filled() {
  KVCache c;
  for (int layer = 0; layer < 2; ++layer) {
    c.keys.push_back(torch::arange(4 * 2 * 10 * 3, torch::kFloat32).view({4, 2, 10, 3}) + 1000 * layer);
    c.values.push_back(-c.keys.back());
  }
  c.length_ = 6;
  return c;
}

TEST(KVCache, KeepRowsMovesTheKeptRowsForwardInPlaceAndKeepsTheRoom) {
  KVCache c = filled();
  const KVCache before = filled();
  const void* storage = c.keys[1].data_ptr();
  c.keep_rows({1, 3});
  for (size_t layer = 0; layer < 2; ++layer) {
    for (auto [got, was] :
         {std::pair{c.keys[layer], before.keys[layer]}, std::pair{c.values[layer], before.values[layer]}}) {
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 2, 10, 3}));
      EXPECT_TRUE(got[0].narrow(1, 0, 6).equal(was[1].narrow(1, 0, 6)));
      EXPECT_TRUE(got[1].narrow(1, 0, 6).equal(was[3].narrow(1, 0, 6)));
    }
  }
  EXPECT_EQ(c.keys[1].data_ptr(), storage) << "no copy of the whole cache";
  EXPECT_EQ(c.length(), 6);
}

TEST(KVCache, KeepRowsRefusesRowsOutOfRangeOrOutOfOrder) {
  KVCache c = filled();
  EXPECT_THROW(c.keep_rows({2, 1}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({1, 1}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({0, 4}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({-1}), sf::ShapeError);
  EXPECT_EQ(c.keys[0].size(0), 4) << "a refused call changes nothing";
}

}  // namespace
