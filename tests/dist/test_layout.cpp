// Tensor groups and data-parallel groups: layouts for every T that divides the number of ranks,
// tensor collectives on sub-communicators, and the group-aware work queue (each group's first rank
// asks and the group follows). Runs as 1 rank under ctest's discovery and as 2 and 4 MPI ranks
// (extra.cmake). Also which GPU a rank takes.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "dist/layout.hpp"

namespace {

using sf::dist::Comm;
using sf::dist::ParallelLayout;
using sf::dist::WorkQueue;

std::vector<int> divisors(int n) {
  std::vector<int> out;
  for (int t = 1; t <= n; ++t)
    if (n % t == 0) out.push_back(t);
  return out;
}

TEST(SplitRange, BalancedContiguousCover) {
  for (int64_t n : {0, 1, 7, 64, 151936}) {
    for (int parts : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int i = 0; i < parts; ++i) {
        const auto r = sf::dist::split_range(n, parts, i);
        EXPECT_EQ(r.begin, next);
        EXPECT_LE(r.size(), n / parts + 1);
        EXPECT_GE(r.size(), n / parts);
        next = r.end;
      }
      EXPECT_EQ(next, n);
    }
  }
  EXPECT_THROW(sf::dist::split_range(10, 0, 0), sf::ShapeError);
  EXPECT_THROW(sf::dist::split_range(10, 2, 2), sf::ShapeError);
}

TEST(ParallelLayout, GroupsOfConsecutiveRanks) {
  const Comm& world = Comm::world();
  for (int T : divisors(world.size())) {
    const ParallelLayout l = ParallelLayout::make(world, T);
    EXPECT_EQ(l.tensor_size(), T);
    EXPECT_EQ(l.tensor_rank(), world.rank() % T);
    EXPECT_EQ(l.num_groups(), world.size() / T);
    EXPECT_EQ(l.group(), world.rank() / T);
    EXPECT_EQ(l.leader(), world.rank() % T == 0);
    // The group's ranks are the consecutive world ranks: a sum over the group tells.
    const int64_t first = world.rank() / T * T;
    EXPECT_EQ(l.tensor.allreduce_sum(int64_t{world.rank()}), T * first + T * (T - 1) / 2) << "T " << T;
    EXPECT_EQ(l.tensor.local_size(), T);  // one node here
  }
  EXPECT_THROW(ParallelLayout::make(world, 0), sf::ConfigError);
  EXPECT_THROW(ParallelLayout::make(world, world.size() + 1), sf::ConfigError);
}

// One GPU per rank: cuda:<local rank> while the node shows the rank that many GPUs; otherwise a
// one-line error naming the rank, its node, what it sees and CUDA_VISIBLE_DEVICES.
TEST(RankGpu, LocalRankWhileTheNodeHasOneForIt) {
  EXPECT_EQ(sf::dist::cuda_index_of_rank("job.yaml", 0, 0, 1, "n1", ""), 0);
  EXPECT_EQ(sf::dist::cuda_index_of_rank("job.yaml", 13, 5, 8, "n1", ""), 5);
  EXPECT_EQ(sf::dist::cuda_index_of_rank("job.yaml", 1, 1, 4, "n1", "0,1"), 1);  // 2 of 4 are this rank's
  auto message = [](int rank, int local_rank, int64_t gpus, const std::string& env) {
    try {
      sf::dist::cuda_index_of_rank("job.yaml", rank, local_rank, gpus, "gpu-node-7", env);
    } catch (const sf::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string none = message(3, 3, 0, "");
  EXPECT_NE(none.find("job.yaml: rank 3 (local rank 3 on gpu-node-7) sees no CUDA device"), std::string::npos) << none;
  // srun --gpus-per-task=1: each rank sees one GPU, so local rank 1 has none at index 1.
  const std::string bound = message(9, 1, 1, "2");
  EXPECT_NE(bound.find("rank 9 (local rank 1 on gpu-node-7) has no GPU of its own: it sees 1 CUDA device(s) "
                       "(CUDA_VISIBLE_DEVICES=2)"),
            std::string::npos)
      << bound;
  EXPECT_EQ(bound.find('\n'), std::string::npos);
  EXPECT_NE(message(8, 8, 8, "").find("has no GPU of its own: it sees 8 CUDA device(s);"), std::string::npos);
  EXPECT_NE(message(0, -1, 8, "").find("has no GPU of its own"), std::string::npos);
}

#ifndef SUPERFICIAL_WITH_CUDA
TEST(RankGpu, ACpuBuildRefusesCuda) {
  try {
    sf::dist::rank_cuda_device("job.yaml", Comm::world());
    ADD_FAILURE() << "no error";
  } catch (const sf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("job.yaml: device: cuda needs a build with -DSUPERFICIAL_WITH_CUDA=ON"),
              std::string::npos)
        << e.what();
  }
}
#endif

TEST(Comm, TensorCollectivesOnAGroup) {
  const Comm& world = Comm::world();
  const ParallelLayout l = ParallelLayout::make(world, world.size());
  const Comm& g = l.tensor;
  const int n = g.size(), r = g.rank();
  g.reset_stats();
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kFloat16, torch::kInt64}) {
    torch::Tensor t = torch::full({2, 3}, r + 1, torch::TensorOptions().dtype(dtype));
    g.allreduce_sum(t);
    EXPECT_EQ(t[1][2].item<double>(), n * (n + 1) / 2.0) << c10::toString(dtype);
    torch::Tensor m = torch::full({4}, r, torch::TensorOptions().dtype(dtype));
    g.allreduce_max(m);
    EXPECT_EQ(m[3].item<double>(), n - 1) << c10::toString(dtype);
  }
  // A non-contiguous tensor is reduced in place too.
  torch::Tensor base = torch::ones({3, 4});
  torch::Tensor column = base.select(1, 2);
  g.allreduce_sum(column);
  EXPECT_EQ(base[2][2].item<float>(), static_cast<float>(n));
  EXPECT_EQ(base[2][1].item<float>(), 1.0f);
  torch::Tensor ints = torch::ones({2}, torch::kInt32);
  EXPECT_THROW(g.allreduce_sum(ints), sf::ShapeError);

  const torch::Tensor all = g.allgather(torch::full({2}, r, torch::kInt64));  // [n,2]
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{n, 2}));
  for (int i = 0; i < n; ++i) EXPECT_EQ(all[i][1].item<int64_t>(), i);

  torch::Tensor b = torch::full({5}, r == n - 1 ? 7.5 : 0.0, torch::kFloat64);
  g.broadcast(b, n - 1);
  EXPECT_EQ(b[4].item<double>(), 7.5);
  EXPECT_EQ(g.broadcast(int64_t{r == 0 ? 42 : -1}), 42);
  if (n > 1) {
    EXPECT_EQ(g.stats().calls, 13);  // 10 reductions, the column, the gather and the tensor broadcast
    EXPECT_GT(g.stats().bytes, 0);
  }
}

TEST(Comm, SingleRankCommNeedsNoMpi) {
  const Comm one;
  EXPECT_EQ(one.size(), 1);
  torch::Tensor t = torch::full({2}, 3.0);
  one.allreduce_sum(t);
  EXPECT_EQ(t[0].item<float>(), 3.0f);
  EXPECT_EQ(one.allgather(t).sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(one.split(0, 0).size(), 1);
}

// Every rank's chunk indices, in order, gathered on rank 0.
std::vector<std::vector<int64_t>> chunks_by_rank(WorkQueue& q) {
  std::string mine;
  while (auto c = q.next()) mine += std::to_string(c->index) + " ";
  std::vector<std::vector<int64_t>> out;
  for (const auto& s : Comm::world().gather(mine)) {
    std::istringstream in(s);
    out.emplace_back();
    int64_t i = 0;
    while (in >> i) out.back().push_back(i);
  }
  return out;
}

TEST(WorkQueue, GroupsGetDisjointChunksAndTheirRanksTheSameOnes) {
  const Comm& world = Comm::world();
  for (int T : divisors(world.size())) {
    const ParallelLayout l = ParallelLayout::make(world, T);
    WorkQueue q(l, 95, 5, {3});
    const auto by_rank = chunks_by_rank(q);
    if (!world.is_root()) continue;
    std::multiset<int64_t> seen;
    for (int r = 0; r < world.size(); ++r) {
      const auto& mine = by_rank[static_cast<size_t>(r)];
      EXPECT_EQ(mine, by_rank[static_cast<size_t>(r / T * T)]) << "rank " << r << " differs from its group, T " << T;
      if (r % T == 0) seen.insert(mine.begin(), mine.end());
    }
    std::multiset<int64_t> expected;
    for (int64_t c = 0; c < 19; ++c)
      if (c != 3) expected.insert(c);
    EXPECT_EQ(seen, expected) << "T " << T;
  }
}

}  // namespace
