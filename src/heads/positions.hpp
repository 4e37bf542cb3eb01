#pragma once
// The response positions of chosen examples of a logit dataset (results-schema/logits-v1), read
// in windows whose memory is bounded, so head training holds at most `max_memory` bytes of
// positions whatever the dataset's size.
//
// A set orders its positions by example row, then by position in the response. It is cut into
// blocks of kBlockPositions consecutive positions; a window is a list of blocks read together.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "extract/logit_dataset.hpp"

namespace sf::heads {

inline constexpr int64_t kBlockPositions = 256;

// Positions of a window, on the host, rows in the order of the window's blocks.
struct Window {
  torch::Tensor hidden;          // [n,H] as stored (float16 | bfloat16)
  torch::Tensor aligned_logits;  // [n,ka] float32
  torch::Tensor aligned_ids;     // [n,ka] int32
  int64_t size() const { return aligned_ids.defined() ? aligned_ids.size(0) : 0; }
};

class PositionSet {
 public:
  // `rows`: example rows of `ds`, ascending. `ds` must outlive the set. Stored ids must lie in
  // [0, vocab_size) (ShapeError naming the file and token row otherwise).
  PositionSet(const extract::LogitDataset& ds, std::vector<int64_t> rows, int64_t vocab_size);

  int64_t size() const { return size_; }  // positions
  int64_t num_examples() const { return static_cast<int64_t>(rows_.size()); }
  const std::vector<int64_t>& rows() const { return rows_; }
  int64_t num_blocks() const { return (size_ + kBlockPositions - 1) / kBlockPositions; }
  // Host bytes one position takes in a Window.
  int64_t bytes_per_position() const;
  // The positions of the listed blocks, in that order.
  Window read_blocks(const std::vector<int64_t>& blocks) const;

 private:
  struct Run {  // a contiguous range of the file's token rows
    int64_t set_begin, file_begin, length;
  };
  Window read_range(int64_t begin, int64_t end) const;  // set positions [begin, end)
  const extract::LogitDataset* ds_;
  int64_t vocab_size_;
  std::vector<int64_t> rows_;
  std::vector<Run> runs_;
  int64_t size_ = 0;
};

}  // namespace sf::heads
