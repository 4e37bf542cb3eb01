#pragma once
// Training a head on the logit dataset, data parallel over MPI ranks, with bounded memory.
//
// Split: by example, never by token. A seeded permutation of the example rows decides which
// examples are validation (validation_examples); it depends only on the number of examples, the
// fraction and the seed, not on the number of ranks. The validation rows are stored with the head
// so that reduce evaluates on them alone (held-out curves).
//
// Order and memory: each epoch permutes the training set's blocks of positions (positions.hpp)
// with a seed derived from (seed, epoch) and reads them in windows of at most `max_memory_bytes`
// (rounded down to whole optimiser steps, at least one); inside a window the positions are
// permuted again (seed, epoch, window). When the whole set fits, it is read once and kept, and an
// epoch is one permutation of all positions. Consecutive batch_tokens positions of a window form
// one optimiser step (only a window's last step may be smaller).
//
// Data parallelism: every rank reads the same window; rank r computes the summed KL of its share
// [r·m/R, (r+1)·m/R) of each step's m positions; gradients are summed over ranks
// (Comm::allreduce_sum) and divided by m. Adam (β 0.9/0.999, ε 1e-8, torch defaults as in the
// reference) then steps identically on every rank, so 1 or R ranks give the same head up to float
// reduction order.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heads/head.hpp"
#include "heads/positions.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::heads {

// true for validation rows: the first max(1, round(val_fraction·E)) entries (at most E-1) of a
// seeded permutation of 0..E-1. ConfigError unless 0 < val_fraction < 1 and E >= 2.
std::vector<bool> validation_examples(int64_t num_examples, double val_fraction, uint64_t seed);

struct TrainOptions {
  double lr = 1e-3;
  int64_t epochs = 1;
  int64_t batch_tokens = 1024;                  // positions per optimiser step, over all ranks
  uint64_t seed = 0;                            // order of epoch e from mix_seed(seed, e)
  int64_t max_memory_bytes = int64_t{1} << 32;  // positions held in memory per rank
  torch::Device device = torch::kCPU;
};

// Mean KL to the aligned top-k softmax, top-1 agreement with the aligned model's argmax and the
// teacher mass on the base top-k support (heads with k > 0), over every rank's share of a set.
struct EvalStats {
  double kl = 0;
  double top1 = 0;
  double coverage = 0;
};

struct EpochMetrics {
  int64_t epoch = 0;  // 0: before training (the head at initialisation)
  int64_t steps = 0;  // optimiser steps so far
  int64_t steps_per_epoch = 0;
  int64_t windows_per_epoch = 0;
  int64_t window_positions = 0;  // positions per window (the memory bound in positions)
  double train_kl = 0;           // epoch ≥ 1: mean over the epoch's positions, each taken before its step's update
  EvalStats val;                 // the head on the validation positions at the end of the epoch
  EvalStats base_train;          // the base model alone; the same in every line
  EvalStats base_val;
  int64_t train_positions = 0;
  int64_t val_positions = 0;
  double seconds = 0;  // wall time since training started
  nlohmann::json to_json() const;
};

// Trains `head` in place. lm_head_weight [V,H] on opts.device. on_epoch is called on every rank
// for epoch 0 and after each epoch. comm == nullptr: this process alone.
void train_head(const Head& head, const PositionSet& train, const PositionSet& val, const torch::Tensor& lm_head_weight,
                const TrainOptions& opts, const dist::Comm* comm,
                const std::function<void(const EpochMetrics&)>& on_epoch);

}  // namespace sf::heads
