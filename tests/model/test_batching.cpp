// length_batches: contiguous batches of the length-sorted sequences that minimise the sum of their
// forward costs (tokens, padding, a fixed part per forward), checked against every partition of
// small cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "model/batching.hpp"

namespace {

using sf::model::forward_cost;
using sf::model::kForwardCostTokens;
using sf::model::length_batches;

int64_t cost(const std::vector<int64_t>& lengths, const std::vector<std::vector<size_t>>& batches) {
  int64_t c = 0;
  for (const auto& b : batches) {
    int64_t tokens = 0;
    for (size_t i : b) tokens += lengths[i];
    c += forward_cost(static_cast<int64_t>(b.size()), lengths[b.front()], tokens);
  }
  return c;
}

// The least cost over every way of cutting `order` into contiguous batches of at most max_rows.
int64_t brute_force(const std::vector<int64_t>& lengths, const std::vector<size_t>& order, int64_t max_rows) {
  const size_t n = order.size();
  int64_t best = -1;
  for (uint32_t cuts = 0; cuts < (1u << (n - 1)); ++cuts) {
    std::vector<std::vector<size_t>> batches(1);
    for (size_t j = 0; j < n; ++j) {
      if (j > 0 && (cuts >> (j - 1) & 1u)) batches.emplace_back();
      batches.back().push_back(order[j]);
    }
    bool fits = true;
    for (const auto& b : batches) fits = fits && static_cast<int64_t>(b.size()) <= max_rows;
    if (fits && (best < 0 || cost(lengths, batches) < best)) best = cost(lengths, batches);
  }
  return best;
}

TEST(LengthBatches, OptimalOnEveryPartitionOfSmallCases) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 10;
    std::vector<int64_t> lengths(n);
    for (auto& l : lengths) l = static_cast<int64_t>(rng() % (trial % 2 ? 300 : 40));
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    const int64_t max_rows = 1 + static_cast<int64_t>(rng() % 5);
    const auto batches = length_batches(lengths, order, max_rows);
    // Every sequence once, in order, batches within the limit.
    std::vector<size_t> flat;
    for (const auto& b : batches) {
      EXPECT_FALSE(b.empty());
      EXPECT_LE(static_cast<int64_t>(b.size()), max_rows);
      flat.insert(flat.end(), b.begin(), b.end());
    }
    EXPECT_EQ(flat, order);
    EXPECT_EQ(cost(lengths, batches), brute_force(lengths, order, max_rows)) << "trial " << trial;
  }
}

TEST(LengthBatches, SeparatesLongFromShortAndKeepsSimilarTogether) {
  // Similar lengths: one batch. One long among short ones: its own batch.
  EXPECT_EQ(length_batches({50, 48, 47, 45}, {0, 1, 2, 3}, 8).size(), 1u);
  const auto b = length_batches({400, 20, 19, 18}, {0, 1, 2, 3}, 8);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], (std::vector<size_t>{0}));
  EXPECT_TRUE(length_batches({}, {}, 4).empty());
  // A padded position costs half a token: short sequences join a longer one's forward while their
  // padding costs less than another forward (here 256 half tokens).
  EXPECT_EQ(forward_cost(3, 100, 190), 2 * 190 + 110 + 2 * kForwardCostTokens);
  EXPECT_EQ(length_batches({100, 60, 30}, {0, 1, 2}, 8).size(), 1u);
  EXPECT_EQ(length_batches({1000, 60, 30}, {0, 1, 2}, 8).size(), 2u);
}

TEST(LengthBatches, RejectsBadInput) {
  EXPECT_THROW(length_batches({1, 2}, {0, 1}, 4), sf::ShapeError);  // not longest first
  EXPECT_THROW(length_batches({1, 2}, {0, 2}, 4), sf::ShapeError);  // index outside
  EXPECT_THROW(length_batches({1}, {0}, 0), sf::ShapeError);
}

}  // namespace
