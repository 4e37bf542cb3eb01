#pragma once
// Sequences of different lengths into padded batches. A forward over B sequences padded to the
// longest T costs about B·T tokens plus a fixed part (weights read, per-op overheads); sorting by
// length and cutting the sorted list where lengths change most keeps both small. Used by scoring
// (right padding) and by generation's prompt passes (left padding).
#include <cstdint>
#include <vector>

namespace sf::model {

// What a forward costs besides its B·T padded tokens, counted in tokens (weights streamed once per
// forward dominate on CPUs at small B·T).
constexpr int64_t kForwardCostTokens = 32;

// Partitions `order` (indices into `lengths`, longest first) into contiguous batches of at most
// `max_rows` that minimise Σ (rows × longest + kForwardCostTokens). Returns the batches in order.
std::vector<std::vector<size_t>> length_batches(const std::vector<int64_t>& lengths, const std::vector<size_t>& order,
                                                int64_t max_rows);

}  // namespace sf::model
