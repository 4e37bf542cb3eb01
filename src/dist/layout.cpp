#include "dist/layout.hpp"

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

}  // namespace sf::dist
