// Runs as one rank under ctest's discovery and as two ranks under `mpirun -np 2` (extra.cmake):
// every rank takes chunks until the queue is empty; rank 0 checks the union.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "dist/comm.hpp"

namespace {

using sf::dist::Comm;
using sf::dist::WorkQueue;

// Every rank's chunks, gathered on rank 0 as (index, begin, end) triples.
std::vector<WorkQueue::Chunk> drain_all(WorkQueue& q, const Comm& comm, int work_ms_per_chunk) {
  std::string mine;
  while (auto c = q.next()) {
    // Uneven work: rank 1 is slower, so dynamic balancing must hand rank 0 more chunks.
    std::this_thread::sleep_for(std::chrono::milliseconds(work_ms_per_chunk * (1 + comm.rank())));
    mine += std::to_string(c->index) + " " + std::to_string(c->begin) + " " + std::to_string(c->end) + "\n";
  }
  std::vector<WorkQueue::Chunk> all;
  for (const auto& s : comm.gather(mine)) {
    std::istringstream in(s);
    WorkQueue::Chunk c{};
    while (in >> c.index >> c.begin >> c.end) all.push_back(c);
  }
  return all;
}

TEST(WorkQueue, CoversEveryItemExactlyOnce) {
  const Comm& comm = Comm::world();
  const int64_t n = 103, chunk = 10;
  WorkQueue q(comm, n, chunk);
  const auto all = drain_all(q, comm, 2);
  if (!comm.is_root()) return;
  std::vector<int> seen(n, 0);
  for (const auto& c : all) {
    EXPECT_EQ(c.begin, c.index * chunk);
    EXPECT_EQ(c.end, std::min(n, c.begin + chunk));
    for (int64_t i = c.begin; i < c.end; ++i) ++seen[static_cast<size_t>(i)];
  }
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << "item " << i;
  EXPECT_EQ(all.size(), 11u);
}

TEST(WorkQueue, SkipListIsNeverHandedOut) {
  const Comm& comm = Comm::world();
  WorkQueue q(comm, 50, 5, {0, 3, 9});
  const auto all = drain_all(q, comm, 1);
  if (!comm.is_root()) return;
  std::vector<int64_t> idx;
  for (const auto& c : all) idx.push_back(c.index);
  std::sort(idx.begin(), idx.end());
  EXPECT_EQ(idx, (std::vector<int64_t>{1, 2, 4, 5, 6, 7, 8}));
}

TEST(WorkQueue, EmptyAndFullySkippedQueues) {
  const Comm& comm = Comm::world();
  WorkQueue empty(comm, 0, 4);
  EXPECT_FALSE(empty.next().has_value());
  WorkQueue done(comm, 8, 4, {0, 1});
  EXPECT_FALSE(done.next().has_value());
  EXPECT_FALSE(done.next().has_value());  // asking again after the end stays empty
}

TEST(WorkQueue, RejectsBadArguments) {
  const Comm& comm = Comm::world();
  EXPECT_THROW(WorkQueue(comm, 10, 0), sf::ConfigError);
  EXPECT_THROW(WorkQueue(comm, 10, 5, {2}), sf::ShapeError);
}

TEST(Comm, Collectives) {
  const Comm& comm = Comm::world();
  const int64_t n = comm.size();
  EXPECT_EQ(comm.allreduce_sum(int64_t{1}), n);
  EXPECT_DOUBLE_EQ(comm.allreduce_sum(0.5), 0.5 * static_cast<double>(n));
  EXPECT_DOUBLE_EQ(comm.allreduce_max(static_cast<double>(comm.rank())), static_cast<double>(n - 1));
  torch::Tensor t = torch::full({3}, static_cast<float>(comm.rank() + 1));
  comm.allreduce_sum(t);
  EXPECT_FLOAT_EQ(t[2].item<float>(), static_cast<float>(n * (n + 1) / 2));
  torch::Tensor ints = torch::ones({2}, torch::kInt32);
  EXPECT_THROW(comm.allreduce_sum(ints), sf::ShapeError);
  EXPECT_EQ(comm.broadcast(comm.is_root() ? "from root" : "other"), "from root");
  const auto g = comm.gather("r" + std::to_string(comm.rank()));
  if (comm.is_root()) {
    ASSERT_EQ(static_cast<int64_t>(g.size()), n);
    EXPECT_EQ(g.back(), "r" + std::to_string(n - 1));
  } else {
    EXPECT_TRUE(g.empty());
  }
  EXPECT_GE(comm.local_rank(), 0);
  EXPECT_LT(comm.local_rank(), comm.local_size());
  comm.barrier();
}

}  // namespace
