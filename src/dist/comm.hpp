#pragma once
// MPI wrapped in one object. Without mpirun the program is one rank and nothing else changes.
// Only rank 0 logs summaries.
//
// A Comm is a group of ranks: the world, a sub-communicator made by split() (a tensor-parallel
// group, the data-parallel ranks across groups), or a default-constructed single rank with no MPI
// at all (the group of a model that is not split). Copies share the same communicator. Tensor
// collectives take CPU tensors through MPI and CUDA tensors through NCCL (one NCCL communicator per
// Comm, made on its first CUDA collective) when built with SUPERFICIAL_WITH_NCCL, otherwise staged
// through host memory. Every collective must be called by every rank of the Comm in the same order.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sf::dist {

// Time spent inside this Comm's tensor collectives (host wall time: for NCCL only the enqueueing,
// unless the caller synchronises the stream).
struct CommStats {
  double seconds = 0;
  int64_t calls = 0;
  int64_t bytes = 0;
};

class Comm {
 public:
  // One rank, no MPI: every collective returns its input.
  Comm();
  // Initialises MPI on first use (MPI_Init_thread) and finalises it at exit.
  static Comm& world();

  int rank() const;
  int size() const;
  bool is_root() const { return rank() == 0; }
  int local_rank() const;  // rank among this Comm's ranks on the same node
  int local_size() const;
  // Torch threads for this rank: `configured` when > 0, else the node's cores shared by its ranks.
  int threads_per_rank(int configured) const;

  // The ranks of this Comm with the same `color`, ordered by `key` (MPI_Comm_split). Collective.
  Comm split(int color, int key) const;

  void barrier() const;
  // Sum/max across ranks, in place. float32, float64, bfloat16, float16 (CPU: reduced in float32)
  // and int64; anything else is a ShapeError.
  void allreduce_sum(torch::Tensor& t) const;
  void allreduce_max(torch::Tensor& t) const;
  // Every rank's tensor (same shape and dtype on every rank) stacked: [size, ...t.shape]. Any dtype.
  torch::Tensor allgather(const torch::Tensor& t) const;
  // Root's tensor into every rank's `t` (same shape and dtype on every rank), in place. Any dtype.
  void broadcast(torch::Tensor& t, int root = 0) const;

  double allreduce_sum(double v) const;
  int64_t allreduce_sum(int64_t v) const;
  double allreduce_max(double v) const;
  int64_t broadcast(int64_t v, int root = 0) const;
  std::string broadcast(const std::string& s, int root = 0) const;
  std::vector<std::string> gather(const std::string& s, int root = 0) const;  // non-root: empty

  CommStats stats() const;
  void reset_stats() const;

  struct Handle;
  const Handle& handle() const { return *h_; }

 private:
  explicit Comm(std::shared_ptr<Handle> h) : h_(std::move(h)) {}
  std::shared_ptr<Handle> h_;
};

// This node's name (gethostname); "unknown-host" when it cannot be read.
std::string host_name();

struct ParallelLayout;

// Dynamic load balancing: items [0, n) are handed out in chunks to whichever rank asks next, so
// ranks with long answers do not hold up the others. Every rank calls next() until nullopt.
// `skip` lists chunk indices already finished (resume); they are never handed out.
class WorkQueue {
 public:
  // Every rank of `comm` asks for its own chunks.
  WorkQueue(const Comm& comm, int64_t num_items, int64_t chunk, std::vector<int64_t> skip = {});
  // Chunks go to tensor groups (dist/layout.hpp): each group's first rank asks and broadcasts the
  // answer to its group, so every rank of a group gets the same chunks and the groups balance as
  // single ranks do above. With layout.tensor_size() == 1 this is the queue above over the world.
  WorkQueue(const ParallelLayout& layout, int64_t num_items, int64_t chunk, std::vector<int64_t> skip = {});
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  struct Chunk {
    int64_t index;  // chunk number
    int64_t begin;  // first item
    int64_t end;    // one past the last item
  };
  std::optional<Chunk> next();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sf::dist
