#include "heads/positions.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace sf::heads {

PositionSet::PositionSet(const extract::LogitDataset& ds, std::vector<int64_t> rows, int64_t vocab_size)
    : ds_(&ds), vocab_size_(vocab_size), rows_(std::move(rows)) {
  if (!std::is_sorted(rows_.begin(), rows_.end())) throw ShapeError("PositionSet: example rows must be ascending");
  for (int64_t row : rows_) {
    const int64_t n = ds.example_tokens(row);
    if (n == 0) continue;
    const int64_t file_begin = ds.token_offset(row);
    if (!runs_.empty() && runs_.back().file_begin + runs_.back().length == file_begin) {
      runs_.back().length += n;  // adjacent examples read as one range
    } else {
      runs_.push_back({size_, file_begin, n});
    }
    size_ += n;
  }
}

int64_t PositionSet::bytes_per_position() const {
  const int64_t k = ds_->top_k();
  return 2 * ds_->hidden_size() + k * (4 + 4);
}

Window PositionSet::read_range(int64_t begin, int64_t end) const {
  std::vector<torch::Tensor> h, l, i;
  auto it =
      std::upper_bound(runs_.begin(), runs_.end(), begin, [](int64_t pos, const Run& r) { return pos < r.set_begin; });
  for (--it; it != runs_.end() && it->set_begin < end; ++it) {
    const int64_t lo = std::max(begin, it->set_begin), hi = std::min(end, it->set_begin + it->length);
    if (lo >= hi) continue;
    const int64_t first = it->file_begin + (lo - it->set_begin);
    const extract::TrainingRows r = ds_->training_rows(first, hi - lo);
    if (r.aligned_topk_ids.numel() > 0 &&
        (r.aligned_topk_ids.min().item<int64_t>() < 0 || r.aligned_topk_ids.max().item<int64_t>() >= vocab_size_))
      throw ShapeError(ds_->path().string() + ": tokens/aligned_topk_ids rows [" + std::to_string(first) + ", " +
                       std::to_string(first + hi - lo) + "): ids outside [0," + std::to_string(vocab_size_) +
                       ") of the base vocabulary");
    h.push_back(r.base_hidden);
    l.push_back(r.aligned_topk_logits);
    i.push_back(r.aligned_topk_ids);
  }
  return {torch::cat(h, 0), torch::cat(l, 0), torch::cat(i, 0)};
}

Window PositionSet::read_blocks(const std::vector<int64_t>& blocks) const {
  std::vector<torch::Tensor> h, l, i;
  for (int64_t b : blocks) {
    if (b < 0 || b >= num_blocks()) throw ShapeError("PositionSet: block " + std::to_string(b) + " out of range");
    const Window w = read_range(b * kBlockPositions, std::min(size_, (b + 1) * kBlockPositions));
    h.push_back(w.hidden);
    l.push_back(w.aligned_logits);
    i.push_back(w.aligned_ids);
  }
  if (blocks.empty()) return {};
  return {torch::cat(h, 0), torch::cat(l, 0), torch::cat(i, 0)};
}

}  // namespace sf::heads
