#pragma once
// One config-driven decoder for the llama / mistral / qwen2 families (GQA, RoPE, RMSNorm, SwiGLU).
// Weights are looked up by their Hugging Face names; a missing required tensor or an unused one is
// a FormatError. `forward` is const and stateless apart from the caller-owned KV cache.
//
// Tensor parallelism: with LoadOptions::tensor_group of T ranks, each rank holds its slice of every
// weight (model/shard.hpp, the Megatron layout) and reads only that slice from the files. Every rank
// of the group calls forward with the same inputs at the same time (it all-reduces twice per layer
// and once after the embedding); hidden states come out whole on every rank and logits split over
// the vocabulary (vocab(): this rank's ids [begin, end)). model/generate.hpp turns split logits into
// log-probabilities, top-k and tokens that are identical on every rank. Inference only: a split
// model cannot be trained or saved.
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/comm.hpp"
#include "model/config.hpp"
#include "model/vocab_parallel.hpp"
#include "model/weight_source.hpp"

namespace sf::model {

struct LoadOptions {
  torch::Device device = torch::kCPU;
  // The weights' dtype; stored F32/F16/BF16 tensors are converted to it. On a GPU it is also the
  // activations' dtype. On a CPU, kBFloat16 keeps the weight matrices (projections, embeddings,
  // lm_head) in bf16 and everything else in float32: activations, KV cache, norms, biases,
  // attention. Each matrix product is that of bf16 operands (the input rows rounded), summed in
  // float32 and rounded to bf16, as torch's bf16 matmul: oneDNN's (AMX where the CPU has it) for
  // prompt and scoring passes, kernels/small_gemm.hpp for decoding steps; the result continues in
  // float32. Half the weight memory and bandwidth of float32; no bf16 rounding between the products.
  torch::Dtype dtype = torch::kFloat32;
  // The ranks that share this model, split over them (dist::ParallelLayout::tensor). One rank
  // (default): the whole model here, as without tensor parallelism.
  dist::Comm tensor_group = dist::Comm();
};

// Per-layer keys/values for incremental decoding. Owned by the caller.
class KVCache {
 public:
  KVCache() = default;
  int64_t length() const { return length_; }  // positions already cached
  // Allocate room for `positions` in total on first use (generation knows its final length), so
  // that the buffers are not regrown by doubling.
  void reserve(int64_t positions) { reserved_ = positions; }
  int64_t reserved() const { return reserved_; }

  // For continuous batching (model/generate.cpp), where rows join and leave a running batch. The
  // caller keeps the attention mask in step: a position that no row attends to may be dropped.
  void drop_front(int64_t n);  // forgets the first n positions of every row
  void pad_front(int64_t n);   // puts n empty (zero) positions before every row
  // Row `src_row` of `src` (length <= this length) becomes row `row`, right-aligned; the positions
  // before it are zeroed.
  void put_row(int64_t row, const KVCache& src, int64_t src_row);
  // Rows [row, row + rows) from position `position` on (to the end of the room), as a cache with no
  // positions yet whose buffers are views of this one's: a forward with it writes its keys and
  // values here, in place (a decoding batch's prompt passes, one per group of similar lengths, fill
  // the batch's cache without a copy). ShapeError outside the buffers.
  KVCache window(int64_t row, int64_t rows, int64_t position) const;
  // Zeroes positions [0, n) of rows [row, row + rows) (the left padding before a window).
  void zero_front(int64_t row, int64_t rows, int64_t n);
  // Keeps rows `rows`, row i of the result from row rows[i] >= i (ascending rows qualify, and so do
  // gaps filled from rows past the kept count), in place: the room reserved for more positions stays.
  // ShapeError for rows out of range, repeated, or with rows[i] < i.
  void keep_rows(const std::vector<int64_t>& rows);

  // Internal to the model: [B, kv_heads, L, head_dim] per layer.
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  int64_t length_ = 0;

 private:
  // ShapeError (naming `what`) unless rows [row, row + rows) and `positions` positions lie within the
  // buffers.
  void check_span(const char* what, int64_t row, int64_t rows, int64_t positions) const;
  int64_t reserved_ = 0;
};

// Tensors by Hugging Face name, each read when the model takes it (so that at most one tensor is
// held besides the model while loading, e.g. one dequantized GGUF tensor).
using TensorReaders = std::map<std::string, std::function<torch::Tensor()>>;

struct ForwardOutput {
  torch::Tensor logits;  // [B,T,V] float32; [B,T,V_local] (this rank's vocabulary slice) when split
  torch::Tensor hidden;  // [B,T,H] float32: final hidden state after the last norm (input of lm_head)
};

class CausalLM {
 public:
  // Loads `dir/config.json` and `dir/model.safetensors` or the shards named by
  // `dir/model.safetensors.index.json`; or a GGUF file (model/gguf_model.hpp) when `dir` is one.
  static CausalLM load(const std::filesystem::path& dir, const LoadOptions& opts = {});
  // A model from any source of named tensors (HF names and shapes). With a tensor group, only this
  // rank's slice of each tensor is read (WeightSource::read_slice).
  static CausalLM from_source(const ModelConfig& config, const WeightSource& source, const LoadOptions& opts = {});
  // A model from tensors by Hugging Face name, with load's checks: every required tensor present,
  // floating point and of its shape, and none left over. `source` names the tensors' origin in errors.
  // With a tensor group each tensor is read whole (one at a time) and this rank keeps its slice.
  static CausalLM from_tensors(const ModelConfig& config, const TensorReaders& tensors, const LoadOptions& opts,
                               const std::string& source);
  // A randomly initialised model (HF-style normal(0, 0.02) init), seeded. With a tensor group each
  // rank keeps its slice of the same model as with one rank.
  static CausalLM random(const ModelConfig& config, uint64_t seed, const LoadOptions& opts = {});

  // ids: [B,T] int64. attention_mask: [B, past+T] with 1 for real tokens and 0 for padding
  // (left padding for batched generation; right padding allowed for scoring). With a cache the
  // new keys/values are appended to it. Positions are derived from the mask (cumsum - 1).
  // last_n > 0: logits and hidden only for the last `last_n` positions ([B,last_n,V]); generation
  // uses 1 for its prompt pass so the lm_head does not run on every prompt position.
  ForwardOutput forward(const torch::Tensor& ids, const torch::Tensor& attention_mask, KVCache* cache = nullptr,
                        int64_t last_n = 0) const;
  // forward in two parts, for callers that want logits at some positions only: the final hidden
  // states after the last norm ([B,T,Hd] or [B,last_n,Hd], compute dtype), then the lm_head on any
  // of them ([...,Hd] → [...,V] float32, this rank's V when split).
  torch::Tensor hidden_states(const torch::Tensor& ids, const torch::Tensor& attention_mask, KVCache* cache = nullptr,
                              int64_t last_n = 0) const;
  torch::Tensor logits(const torch::Tensor& hidden) const;

  const ModelConfig& config() const;
  torch::Device device() const;
  torch::Dtype dtype() const;
  torch::Tensor lm_head_weight() const;  // [V,H] (the embedding matrix when tied); [V_local,H] when split
  const VocabParallel& vocab() const;    // this rank's vocabulary range and the group's vocab ops
  const dist::Comm& tensor_group() const;

  // Parameters by HF name, stable order (this rank's slices when split). Setting requires_grad on
  // them enables training through the same forward (one rank only).
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  // Writes config.json and model.safetensors (F32 or the compute dtype) in HF layout. ConfigError
  // for a split model.
  void save(const std::filesystem::path& dir) const;

  // A KV cache for `rows` rows with room for `capacity` positions and none yet, on the model's device
  // in the dtype its forward writes; the buffers are not initialised (a batch's cache is hundreds of
  // MiB, and zeroing them cost more than its prompt pass): its forwards (through KVCache::window)
  // and KVCache::zero_front must write every position that is read.
  KVCache make_cache(int64_t rows, int64_t capacity) const;

  struct Weights;

 private:
  std::shared_ptr<Weights> w_;
};

}  // namespace sf::model
