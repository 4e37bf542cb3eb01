#pragma once
// Training a head on the logit dataset, data parallel over MPI ranks.
//
// Split: by example, never by token. A seeded permutation of the example rows decides which
// examples are validation (see validation_examples); it depends only on the number of examples,
// the fraction and the seed, not on the number of ranks.
// Sharding: rank r reads the contiguous example rows [r·E/R, (r+1)·E/R) and keeps their positions.
// Order: each epoch visits all training positions (over all ranks) in a seeded permutation of
// their global index; consecutive batch_tokens of it form one optimiser step. Each rank computes
// the summed KL of the positions of the step it holds; gradients are summed over ranks
// (Comm::allreduce_sum) and divided by the step's position count. Adam (β 0.9/0.999, ε 1e-8, the
// reference's torch defaults) then steps identically on every rank, so 1 or R ranks give the same
// head up to float reduction order.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heads/head.hpp"

namespace sf::dist {
class Comm;
}
namespace sf::extract {
class LogitDataset;
}

namespace sf::heads {

// One rank's positions of one split, in global order.
struct TokenSet {
  torch::Tensor hidden;          // [n,H] float32; undefined when only bb heads are trained
  torch::Tensor aligned_logits;  // [n,ka] float32, descending
  torch::Tensor aligned_ids;     // [n,ka] int32
  torch::Tensor base_logits;     // [n,kb] float32, descending; undefined unless a bb head is trained
  torch::Tensor base_ids;        // [n,kb] int32
  int64_t offset = 0;            // global index of this rank's first position in the split
  int64_t total = 0;             // positions of the split over all ranks
  int64_t size() const { return aligned_ids.defined() ? aligned_ids.size(0) : 0; }
};

struct SplitData {
  TokenSet train;
  TokenSet val;
  int64_t train_examples = 0;  // over all ranks
  int64_t val_examples = 0;
};

// true for validation rows: the first max(1, round(val_fraction·E)) entries (at most E-1) of a
// seeded permutation of 0..E-1. ConfigError unless 0 < val_fraction < 1 and E >= 2.
std::vector<bool> validation_examples(int64_t num_examples, double val_fraction, uint64_t seed);

// Example rows [begin, end) that `rank` of `size` reads.
std::pair<int64_t, int64_t> rank_rows(int64_t num_examples, int rank, int size);

// Reads this rank's rows of the dataset and splits them. `vocab_size` bounds the stored ids
// (ShapeError naming the file otherwise). comm == nullptr: this process alone.
SplitData load_split(const extract::LogitDataset& ds, const dist::Comm* comm, double val_fraction, uint64_t seed,
                     bool need_hidden, bool need_base_topk, int64_t vocab_size);

struct TrainOptions {
  double lr = 1e-3;
  int64_t epochs = 1;
  int64_t batch_tokens = 1024;  // positions per optimiser step, over all ranks
  uint64_t seed = 0;            // the token order of epoch e is permutation(mix_seed(seed, e))
  torch::Device device = torch::kCPU;
};

// Mean KL to the aligned top-k softmax and top-1 agreement with the aligned model's argmax, over
// every rank's positions of a set.
struct EvalStats {
  double kl = 0;
  double top1 = 0;
};

struct EpochMetrics {
  int64_t epoch = 0;     // 0: before training (the head at initialisation)
  int64_t steps = 0;     // optimiser steps so far
  double train_kl = 0;   // epoch ≥ 1: mean over the epoch's positions, each taken before its step's update
  EvalStats val;         // the head on the validation positions at the end of the epoch
  EvalStats base_train;  // the base model alone (the starting point); the same in every line
  EvalStats base_val;
  int64_t train_positions = 0;
  int64_t val_positions = 0;
  double seconds = 0;   // wall time since training started
  std::string support;  // "vocab" (hidden, bias: full-vocabulary softmax) | "base_topk" (bb)
  nlohmann::json to_json() const;
};

// The head (base_only = false) or the base alone (true) on a set. For hidden/bias heads the
// student is the full-vocabulary softmax of hidden·Wᵀ (+ correction) and its top-1 the argmax over
// the vocabulary; for bb heads both are over the base top-k support (see loss.hpp).
EvalStats evaluate(const Head& head, bool base_only, const TokenSet& set, const torch::Tensor& lm_head_weight,
                   const TrainOptions& opts, const dist::Comm* comm);

// Trains `head` in place (see the top of this file). lm_head_weight [V,H] is used by hidden and
// bias heads (undefined for bb). on_epoch is called on every rank for epoch 0 and after each epoch.
void train_head(const Head& head, const SplitData& data, const torch::Tensor& lm_head_weight, const TrainOptions& opts,
                const dist::Comm* comm, const std::function<void(const EpochMetrics&)>& on_epoch);

}  // namespace sf::heads
