#pragma once
// How the ranks of a job are arranged: groups of T consecutive ranks (on one node) each hold one
// copy of every model split T ways (tensor parallelism, Megatron layout); the groups share the
// work as single ranks do without it (data parallelism). T = 1 is plain data parallelism over the
// world, with no extra communicator.
//
//   world ranks 0..7, T = 4:   tensor groups {0,1,2,3} {4,5,6,7};   data: {0,4} {1,5} {2,6} {3,7}
#include <cstdint>
#include <string>

#include "dist/comm.hpp"

namespace sf::dist {

// A contiguous part [begin, end) of [0, n).
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool contains(int64_t i) const { return i >= begin && i < end; }
};

// Part `index` of [0, n) split into `parts` balanced contiguous ranges: [index·n/parts,
// (index+1)·n/parts). Sizes differ by at most one. ShapeError on bad arguments.
Range split_range(int64_t n, int parts, int index);

struct ParallelLayout {
  // Groups of `tensor` consecutive ranks of `world`. Collective over `world`. ConfigError (on every
  // rank) when tensor < 1, when it does not divide the number of ranks, or when a group's ranks are
  // not all on one node.
  static ParallelLayout make(const Comm& world, int tensor);

  Comm tensor;  // this rank's group (size T); a single rank when T = 1
  Comm data;    // the ranks at this rank's position in every group; the world when T = 1

  int tensor_size() const { return tensor.size(); }
  int tensor_rank() const { return tensor.rank(); }
  int group() const { return data.rank(); }           // which group this rank belongs to
  int num_groups() const { return data.size(); }      // = world size / T
  bool leader() const { return tensor.rank() == 0; }  // the group's first rank (asks for work, writes)
};

// The GPU of a rank: cuda:<local rank>, one GPU per rank, every rank seeing all of its node's GPUs
// (slurm/superficial.sbatch). `visible_gpus` is what torch counts on that rank, `cuda_visible` its
// CUDA_VISIBLE_DEVICES ("" when unset). ConfigError starting with `what` and naming the rank, its
// node and the GPUs it sees when there is none for it: no GPU at all, or more ranks on the node
// than GPUs visible to each (a launcher that binds one GPU to each task shows every rank one).
int cuda_index_of_rank(const std::string& what, int rank, int local_rank, int64_t visible_gpus, const std::string& node,
                       const std::string& cuda_visible);
// The same for this process (torch's device count, this node, the environment). ConfigError in a
// build without SUPERFICIAL_WITH_CUDA.
torch::Device rank_cuda_device(const std::string& what, const Comm& comm);

}  // namespace sf::dist
