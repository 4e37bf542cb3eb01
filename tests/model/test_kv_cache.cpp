#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "model/causal_lm.hpp"

namespace {

using sf::model::KVCache;

// Two layers of `rows` rows with room for `capacity` positions (2 heads of 3), not initialised.
KVCache uninitialised(int64_t rows, int64_t capacity) {
  KVCache c;
  for (int layer = 0; layer < 2; ++layer) {
    c.keys.push_back(torch::empty({rows, 2, capacity, 3}, torch::kFloat32));
    c.values.push_back(torch::empty({rows, 2, capacity, 3}, torch::kFloat32));
  }
  return c;
}

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

// A batch's cache from CausalLM::make_cache is not initialised (hundreds of MiB): put_row must write
// every position of a row up to the cache's length, zeros before a shorter source row. The memory a
// freed NaN tensor of the same size leaves behind is what malloc hands out next, so a position
// put_row missed would show as NaN here.
TEST(KVCache, PutRowWritesEveryPositionOfAnUninitialisedRow) {
  const KVCache src = filled();  // length 6
  KVCache longer = filled();
  longer.length_ = 8;
  for (int trial = 0; trial < 2; ++trial) {
    {  // 21 KiB each: above malloc's per-thread cache, so their chunks go to the bins memalign reuses
      std::vector<torch::Tensor> poison;
      for (int i = 0; i < 4; ++i) poison.push_back(torch::full({3, 2, 300, 3}, std::nanf(""), torch::kFloat32));
    }
    KVCache c = uninitialised(3, 300);
    c.length_ = 8;
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
  KVCache small = uninitialised(1, 4);
  small.length_ = 4;
  EXPECT_THROW(small.put_row(0, src, 0), sf::ShapeError) << "a source longer than the cache";
}

// A window's buffers are views of the cache's rows and positions: what a forward appends to the
// window lands there, and zero_front clears the positions before it; both refuse to reach outside.
TEST(KVCache, WindowWritesIntoTheCacheAndZeroFrontClearsBeforeIt) {
  KVCache c = filled();  // 4 rows, room for 10
  const KVCache before = filled();
  KVCache w = c.window(1, 2, 3);
  ASSERT_EQ(w.keys.size(), 2u);
  EXPECT_EQ(w.length(), 0);
  EXPECT_EQ(w.keys[1].sizes(), (std::vector<int64_t>{2, 2, 7, 3}));
  for (size_t layer = 0; layer < 2; ++layer) {
    w.keys[layer].narrow(2, 0, 2).fill_(7.0f);
    w.values[layer].narrow(2, 0, 2).fill_(-7.0f);
  }
  c.zero_front(1, 2, 3);
  for (size_t layer = 0; layer < 2; ++layer) {
    for (auto [got, was, x] : {std::tuple{c.keys[layer], before.keys[layer], 7.0f},
                               std::tuple{c.values[layer], before.values[layer], -7.0f}}) {
      EXPECT_TRUE(got.narrow(0, 1, 2).narrow(2, 0, 3).equal(torch::zeros({2, 2, 3, 3})));
      EXPECT_TRUE(got.narrow(0, 1, 2).narrow(2, 3, 2).equal(torch::full({2, 2, 2, 3}, x)));
      EXPECT_TRUE(got.narrow(0, 1, 2).narrow(2, 5, 5).equal(was.narrow(0, 1, 2).narrow(2, 5, 5)));
      EXPECT_TRUE(got[0].equal(was[0]));
      EXPECT_TRUE(got[3].equal(was[3]));
    }
  }
  EXPECT_THROW(c.window(3, 2, 0), sf::ShapeError);
  EXPECT_THROW(c.window(0, 1, 11), sf::ShapeError);
  EXPECT_THROW(c.window(-1, 1, 0), sf::ShapeError);
  EXPECT_THROW(c.zero_front(0, 5, 1), sf::ShapeError);
  EXPECT_THROW(c.zero_front(0, 1, 11), sf::ShapeError);
}

}  // namespace
