#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <tuple>
#include <vector>

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

// Generation drops ended rows by filling the gaps with rows from beyond the kept count: row 1 (gone)
// takes row 3, rows 0 and 2 stay.
TEST(KVCache, KeepRowsFillsGapsFromBeyondTheKeptCount) {
  KVCache c = filled();
  const KVCache before = filled();
  c.keep_rows({0, 3, 2});
  for (size_t layer = 0; layer < 2; ++layer) {
    for (auto [got, was] :
         {std::pair{c.keys[layer], before.keys[layer]}, std::pair{c.values[layer], before.values[layer]}}) {
      ASSERT_EQ(got.size(0), 3);
      EXPECT_TRUE(got[0].narrow(1, 0, 6).equal(was[0].narrow(1, 0, 6)));
      EXPECT_TRUE(got[1].narrow(1, 0, 6).equal(was[3].narrow(1, 0, 6)));
      EXPECT_TRUE(got[2].narrow(1, 0, 6).equal(was[2].narrow(1, 0, 6)));
    }
  }
}

TEST(KVCache, KeepRowsRefusesRowsOutOfRangeOrOutOfOrder) {
  KVCache c = filled();
  EXPECT_THROW(c.keep_rows({1, 0}), sf::ShapeError);  // row 1 from row 0, which row 0's copy replaced
  EXPECT_THROW(c.keep_rows({0, 3, 1}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({1, 1}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({0, 4}), sf::ShapeError);
  EXPECT_THROW(c.keep_rows({-1}), sf::ShapeError);
  EXPECT_EQ(c.keys[0].size(0), 4) << "a refused call changes nothing";
}

// allocate_like leaves its buffers uninitialised (a batch's cache is hundreds of MiB): put_row must
// write every position of a row up to the cache's length, zeros before a shorter source row. The
// memory a freed NaN tensor of the same size leaves behind is what malloc hands out next, so a
// position put_row missed would show as NaN here.
TEST(KVCache, PutRowWritesEveryPositionOfAnAllocatedRow) {
  const KVCache src = filled();  // length 6
  KVCache longer = filled();
  longer.length_ = 8;
  for (int trial = 0; trial < 2; ++trial) {
    {  // 21 KiB each: above malloc's per-thread cache, so their chunks go to the bins memalign reuses
      std::vector<torch::Tensor> poison;
      for (int i = 0; i < 4; ++i) poison.push_back(torch::full({3, 2, 300, 3}, std::nanf(""), torch::kFloat32));
    }
    KVCache c;
    c.reserve(300);
    c.allocate_like(src, 3, 8);
    ASSERT_EQ(c.keys.size(), 2u);
    ASSERT_EQ(c.keys[0].sizes(), (std::vector<int64_t>{3, 2, 300, 3}));
    EXPECT_EQ(c.length(), 8);
    c.put_row(0, src, 1);
    c.put_row(1, longer, 3);
    c.put_row(2, src, 0);
    for (size_t layer = 0; layer < 2; ++layer) {
      for (auto [got, a, b] : {std::tuple{c.keys[layer], src.keys[layer], longer.keys[layer]},
                               std::tuple{c.values[layer], src.values[layer], longer.values[layer]}}) {
        EXPECT_TRUE(got[0].narrow(1, 0, 2).equal(torch::zeros({2, 2, 3})));
        EXPECT_TRUE(got[0].narrow(1, 2, 6).equal(a[1].narrow(1, 0, 6)));
        EXPECT_TRUE(got[1].narrow(1, 0, 8).equal(b[3].narrow(1, 0, 8)));
        EXPECT_TRUE(got[2].narrow(1, 0, 2).equal(torch::zeros({2, 2, 3})));
        EXPECT_TRUE(got[2].narrow(1, 2, 6).equal(a[0].narrow(1, 0, 6)));
      }
    }
  }
  KVCache small;
  small.allocate_like(src, 1, 4);
  EXPECT_THROW(small.put_row(0, src, 0), sf::ShapeError) << "a source longer than the cache";
}

}  // namespace
