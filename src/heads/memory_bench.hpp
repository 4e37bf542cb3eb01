#pragma once
// `superficial bench train-head`: head training's memory against its bound. Writes a synthetic
// logit dataset of a given size (random hidden states and teacher top-k, no model needed), trains
// a hidden head on it for one epoch with heads.max_memory_mb = the bound, and reports the peak
// resident memory during training above the process's memory before it (VmHWM, reset through
// /proc/self/clear_refs), next to the dataset's and the bound's size.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace sf::heads {

struct MemoryBenchOptions {
  std::filesystem::path dir;  // scratch folder (created, removed afterwards)
  int64_t dataset_mb = 200;   // size of the positions in memory terms (hidden fp16 + teacher top-k)
  int64_t bound_mb = 10;
  int64_t vocab = 2048;
  int64_t hidden = 1024;
  int64_t top_k = 64;
  int64_t batch_tokens = 256;
  uint64_t seed = 1;
};

nlohmann::json bench_training_memory(const MemoryBenchOptions& opts);

}  // namespace sf::heads
