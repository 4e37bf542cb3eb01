#pragma once
// MPI wrapped in one object. Without mpirun the program is one rank and nothing else changes.
// Only rank 0 logs summaries.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sf::dist {

class Comm {
 public:
  // Initialises MPI on first use (MPI_Init_thread) and finalises it at exit.
  static Comm& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  int local_rank() const { return local_rank_; }  // rank among the ranks on this node
  int local_size() const { return local_size_; }
  // Torch threads for this rank: `configured` when > 0, else the node's cores shared by its ranks.
  int threads_per_rank(int configured) const;

  void barrier() const;
  // Sum across ranks, in place. CPU tensors go through MPI; CUDA tensors through NCCL when built
  // with SUPERFICIAL_WITH_NCCL, otherwise staged through host memory. float32/float64 only.
  void allreduce_sum(torch::Tensor& t) const;
  double allreduce_sum(double v) const;
  int64_t allreduce_sum(int64_t v) const;
  double allreduce_max(double v) const;
  std::string broadcast(const std::string& s, int root = 0) const;
  std::vector<std::string> gather(const std::string& s, int root = 0) const;  // non-root: empty

 private:
  Comm();
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
};

// Dynamic load balancing: items [0, n) are handed out in chunks to whichever rank asks next, so
// ranks with long answers do not hold up the others. Every rank calls next() until nullopt.
// `skip` lists chunk indices already finished (resume); they are never handed out.
class WorkQueue {
 public:
  WorkQueue(const Comm& comm, int64_t num_items, int64_t chunk, std::vector<int64_t> skip = {});
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
