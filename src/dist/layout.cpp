#include "dist/layout.hpp"

#include <cstdlib>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace sf::dist {

Range split_range(int64_t n, int parts, int index) {
  if (n < 0 || parts < 1 || index < 0 || index >= parts) {
    throw ShapeError("split_range: part " + std::to_string(index) + " of " + std::to_string(n) + " items in " +
                     std::to_string(parts) + " parts");
  }
  if (n > std::numeric_limits<int64_t>::max() / parts) throw ShapeError("split_range: " + std::to_string(n) + " items");
  return Range{index * n / parts, (index + 1) * n / parts};
}

ParallelLayout ParallelLayout::make(const Comm& world, int tensor) {
  if (tensor < 1) throw ConfigError("parallel.tensor: must be >= 1, got " + std::to_string(tensor));
  if (world.size() % tensor != 0) {
    throw ConfigError("parallel.tensor: " + std::to_string(tensor) + " does not divide the " +
                      std::to_string(world.size()) + " ranks (start a multiple of " + std::to_string(tensor) +
                      " ranks)");
  }
  ParallelLayout l;
  if (tensor == 1) {
    l.data = world;
    return l;
  }
  l.tensor = world.split(world.rank() / tensor, world.rank());
  l.data = world.split(world.rank() % tensor, world.rank());
  const double spread = world.allreduce_max(l.tensor.local_size() == l.tensor.size() ? 0.0 : 1.0);
  if (spread > 0) {
    throw ConfigError("parallel.tensor: the " + std::to_string(tensor) +
                      " consecutive ranks of a tensor group must be on one node; start a multiple of " +
                      std::to_string(tensor) + " ranks per node with block placement (srun's default)");
  }
  return l;
}

int cuda_index_of_rank(const std::string& what, int rank, int local_rank, int64_t visible_gpus, const std::string& node,
                       const std::string& cuda_visible) {
  if (local_rank >= 0 && local_rank < visible_gpus) return local_rank;
  const std::string who =
      what + ": rank " + std::to_string(rank) + " (local rank " + std::to_string(local_rank) + " on " + node + ")";
  const std::string env = cuda_visible.empty() ? "" : " (CUDA_VISIBLE_DEVICES=" + cuda_visible + ")";
  if (visible_gpus <= 0) throw ConfigError(who + " sees no CUDA device" + env);
  throw ConfigError(who + " has no GPU of its own: it sees " + std::to_string(visible_gpus) + " CUDA device(s)" + env +
                    "; each rank takes cuda:<local rank>, so start at most that many ranks per node and let every "
                    "rank see all of the node's GPUs (no per-task GPU binding)");
}

torch::Device rank_cuda_device(const std::string& what, const Comm& comm) {
#ifdef SUPERFICIAL_WITH_CUDA
  const int64_t gpus = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  const char* env = std::getenv("CUDA_VISIBLE_DEVICES");
  const int index = cuda_index_of_rank(what, comm.rank(), comm.local_rank(), gpus, host_name(), env ? env : "");
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
#else
  (void)comm;
  throw ConfigError(what + ": device: cuda needs a build with -DSUPERFICIAL_WITH_CUDA=ON");
#endif
}

}  // namespace sf::dist
