#pragma once
// A small portable random generator (splitmix64) for everything in training that must not depend
// on the platform, the library version or the number of ranks: head initialisation, the
// train/validation split and the per-epoch token order.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sf::heads {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();  // [0, 1), 53 bits
  double normal();   // standard normal (Box–Muller)

 private:
  uint64_t state_;
};

// Mixes several values into one seed (e.g. the job seed and an epoch number).
uint64_t mix_seed(uint64_t a, uint64_t b);

// A uniformly random permutation of 0..n-1 (Fisher–Yates).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// float32 tensor of the given shape with independent N(0, stddev²) entries, on the CPU.
torch::Tensor normal_tensor(const std::vector<int64_t>& shape, double stddev, uint64_t seed);

}  // namespace sf::heads
