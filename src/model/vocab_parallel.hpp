#pragma once
// The vocabulary split over the ranks of a tensor group: rank r of T holds the logits (and the
// embedding / lm_head rows, and a head's per-token parameters) of ids [begin, end) =
// dist::split_range(V, T, r). Every operation takes this rank's slice x: [..., V_local] and returns
// the same result on every rank of the group, equal to the operation on the full [..., V] logits
// (up to float summation order) without gathering them: a top-k moves k (value, id) pairs per rank
// and row, a log-softmax one max and one sum per row. With a single-rank group every operation is
// the plain torch one on the full vocabulary.
//
// Top-k order is canonical everywhere (one rank or many): values descending, equal values by
// ascending id. torch::topk leaves the order of equal values to the implementation, so ties (common
// in bf16) would otherwise differ between runs, devices and T.
#include <torch/torch.h>

#include <cstdint>

#include "dist/comm.hpp"
#include "dist/layout.hpp"

namespace sf::model {

struct TopK {
  torch::Tensor values;  // [..., k] float, descending; equal values by ascending id
  torch::Tensor ids;     // [..., k] int64 vocabulary ids
};

// Canonical top-k of x over its last dimension (k <= x.size(-1)).
TopK topk(const torch::Tensor& x, int64_t k);

class VocabParallel {
 public:
  // The whole vocabulary on one rank.
  explicit VocabParallel(int64_t vocab_size = 0);
  VocabParallel(int64_t vocab_size, dist::Comm group);

  int64_t vocab_size() const { return vocab_size_; }
  int64_t begin() const { return range_.begin; }
  int64_t end() const { return range_.end; }
  int64_t local_size() const { return range_.size(); }
  bool is_split() const { return group_.size() > 1; }
  const dist::Comm& group() const { return group_; }

  // log Σ_v exp(x_v) over the whole vocabulary: [...].
  torch::Tensor logsumexp(const torch::Tensor& x) const;
  // This rank's slice of log_softmax over the whole vocabulary: [..., V_local].
  torch::Tensor log_softmax(const torch::Tensor& x) const;
  // Canonical top-k over the whole vocabulary, global ids: merged from each rank's local top-k.
  TopK topk(const torch::Tensor& x, int64_t k) const;
  // Global id of the largest logit, the lowest id among equal maxima (as torch::argmax): [...].
  torch::Tensor argmax(const torch::Tensor& x) const;
  // x at global ids (one per row): ids [...] int64 -> [...] (target logits for log-likelihoods).
  torch::Tensor pick(const torch::Tensor& x, const torch::Tensor& ids) const;
  // The full logits [..., V] on every rank (sampling needs them); moves V floats per row.
  torch::Tensor gather(const torch::Tensor& x) const;
  // This rank's columns [..., V_local] of a tensor over the whole vocabulary [..., V] (a view).
  torch::Tensor slice(const torch::Tensor& full) const;
  // This rank's rows [V_local, ...] of a per-token parameter [V, ...] (a view): a head's ΔW, U or
  // bias, so that h·ΔWᵀ comes out as this rank's slice of the correction.
  torch::Tensor rows(const torch::Tensor& full) const;
  // x[..., id - begin] = values for the (ids, values) pairs [..., k] that fall in this rank's range
  // (a head's correction of the global top-k written back into the slice); in place.
  void scatter_(torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& values) const;

 private:
  void check(const torch::Tensor& x, const char* what) const;
  int64_t vocab_size_ = 0;
  dist::Range range_;
  dist::Comm group_;
};

}  // namespace sf::model
