#include "model/batching.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace sf::model {

int64_t forward_cost(int64_t rows, int64_t longest, int64_t tokens) {
  return 2 * tokens + (rows * longest - tokens) + 2 * kForwardCostTokens;
}

std::vector<std::vector<size_t>> length_batches(const std::vector<int64_t>& lengths, const std::vector<size_t>& order,
                                                int64_t max_rows) {
  if (max_rows <= 0) throw ShapeError("length_batches: max_rows must be positive");
  const size_t n = order.size();
  for (size_t j = 0; j < n; ++j) {
    if (order[j] >= lengths.size()) throw ShapeError("length_batches: index outside the sequences");
    if (j > 0 && lengths[order[j]] > lengths[order[j - 1]])
      throw ShapeError("length_batches: sequences must come longest first");
  }
  // best[j]: least cost of the first j sequences; cut[j]: where the last batch of that solution starts.
  std::vector<int64_t> best(n + 1, std::numeric_limits<int64_t>::max());
  std::vector<size_t> cut(n + 1, 0);
  best[0] = 0;
  const auto rows = static_cast<size_t>(max_rows);
  std::vector<int64_t> sum(n + 1, 0);  // sum[j]: tokens of the first j sequences
  for (size_t j = 0; j < n; ++j) sum[j + 1] = sum[j] + lengths[order[j]];
  for (size_t j = 1; j <= n; ++j) {
    for (size_t i = j > rows ? j - rows : 0; i < j; ++i) {
      // Batch [i, j): padded to its first (longest) sequence.
      const int64_t c = best[i] + forward_cost(static_cast<int64_t>(j - i), lengths[order[i]], sum[j] - sum[i]);
      if (c < best[j]) {
        best[j] = c;
        cut[j] = i;
      }
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t j = n; j > 0; j = cut[j])
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(cut[j]),
                         order.begin() + static_cast<std::ptrdiff_t>(j));
  std::reverse(batches.begin(), batches.end());
  return batches;
}

}  // namespace sf::model
