#pragma once
// Memory per rank of a job's models for each tensor-parallel size T (`superficial plan`, and the
// check `run` makes before loading anything). Every figure is bytes on one rank (one GPU):
//
//   weights      this rank's slices (model/shard.hpp; the largest rank when a split is uneven):
//                vocabulary rows of embed (and lm_head when untied), per layer the q/k/v/o heads,
//                the MLP rows/columns and the replicated norms, at the compute dtype.
//   kv_cache     2 · layers · batch · max_length · (KV heads / T) · head_dim · dtype bytes
//                (generation reserves its final length up front, KVCache::reserve).
//   activations  the largest transient of one forward over batch × max_length tokens (N): the
//                residual stream N·H·(3·dtype + 8) plus the largest of
//                  attention  batch · (heads/T) · max_length² · (dtype + 8)   (scores in float32,
//                             softmax, probabilities in the dtype; attention is not fused)
//                  MLP        N · ⌈I/T⌉ · 3 · dtype
//                  logits     N · ⌈V/T⌉ · (dtype + 13)  (float32 logits, log-sum-exp, log-softmax,
//                             the top-k comparison mask)
//
// A job holds every model at once (extract: base and aligned; evaluate: every system's model), but
// runs one forward at a time, so for a given T the job needs Σ weights + max (kv_cache +
// activations) + reserve (CUDA context, NCCL buffers, allocator slack). These are estimates from
// the formulas above, not measurements.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "model/config.hpp"

namespace sf::model {

struct PlanInput {
  std::string name;  // the model's name in the job
  ModelConfig config;
  int64_t dtype_bytes = 4;  // compute dtype: 4 float32, 2 bfloat16/float16
  int64_t batch = 1;        // sequences per forward
  int64_t max_length = 1;   // tokens per sequence (prompt + generated)
};

struct DeviceBudget {
  int gpus_per_node = 1;          // T is at most this (a tensor group lives on one node)
  uint64_t gpu_memory = 0;        // bytes per GPU
  uint64_t reserve = 4ull << 30;  // bytes per GPU kept for the runtime
};

struct PlanRow {
  int tensor = 1;
  uint64_t weights = 0;
  uint64_t kv_cache = 0;
  uint64_t activations = 0;
  uint64_t total() const { return weights + kv_cache + activations; }
};

struct ModelPlan {
  PlanInput input;
  std::vector<PlanRow> rows;  // one per T that divides the KV heads and is <= gpus_per_node
};

struct JobRow {
  int tensor = 1;
  uint64_t weights = 0;  // Σ over models
  uint64_t peak = 0;     // max over models of kv_cache + activations
  uint64_t total(const DeviceBudget& d) const { return weights + peak + d.reserve; }
  bool fits(const DeviceBudget& d) const { return total(d) <= d.gpu_memory; }
};

struct JobPlan {
  std::vector<ModelPlan> models;
  std::vector<JobRow> rows;  // one per T valid for every model
  DeviceBudget device;
  // The smallest T at which the whole job fits, if any.
  std::optional<int> smallest_fit() const;
  // The table `superficial plan` prints (one block per model, then the job).
  std::string table() const;
  // Nothing when T fits; else a ConfigError whose message is one line naming T followed by the
  // table (`run` refuses to start).
  void check(int tensor) const;
};

// The job's models (every entry under `models`, config from its folder or GGUF file, never the
// weights) at the job's batch (the largest of extract.batch_size and evaluate.batch_size, default 8)
// and length (extract.max_new_tokens, default 512, plus `prompt_tokens`); `batch` and `max_length`
// replace those when set.
constexpr int64_t kPlanPromptTokens = 512;  // prompt tokens assumed by `plan` (default) and `run`
std::vector<PlanInput> plan_inputs(const Job& job, int64_t prompt_tokens, std::optional<int64_t> batch = {},
                                   std::optional<int64_t> max_length = {});

ModelPlan plan_model(const PlanInput& in, const DeviceBudget& device);
JobPlan plan_job(const std::vector<PlanInput>& models, const DeviceBudget& device);

// The budget of this node's GPUs: `gpus_per_node` of the memory of cuda:`device` (nullopt in a build
// without CUDA or without a GPU), with the default reserve. `run` checks the job's T against it.
std::optional<DeviceBudget> cuda_device_budget(int gpus_per_node, int device);

// "80GiB", "80 GB", "81920MiB", "1.5TiB", "85899345920": bytes. ConfigError naming `key` otherwise.
uint64_t parse_bytes(const std::string& text, const std::string& key);
// 17.2 GiB style.
std::string format_bytes(uint64_t bytes);

}  // namespace sf::model
