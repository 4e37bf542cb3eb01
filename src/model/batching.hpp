#pragma once
// Sequences of different lengths into padded batches. A forward over B sequences padded to the
// longest T runs its products, norms and MLP on the tokens alone (CausalLM packs them), its
// attention, rotary and cache writes in the padded [B,T] layout, and has a fixed part (weights
// streamed once, per-op overheads, and on CPUs the lower efficiency of products of few rows).
// Sorting by length and cutting the sorted list where lengths change most keeps the padding and
// the number of forwards small. Used by scoring (right padding) and by generation's prompt passes
// (left padding).
#include <cstdint>
#include <vector>

namespace sf::model {

// The cost of one forward, in half tokens: 2 per token, 1 per padded position, 2 ·
// kForwardCostTokens for the forward itself. Measured on the extraction bench (SmolLM2-135M, 2
// cores; README): with these weights both float32 and bf16 ran fastest of the settings tried
// (fixed part 32 to 512 tokens, a padded position 1/8 to 1/2 of a token).
constexpr int64_t kForwardCostTokens = 128;
int64_t forward_cost(int64_t rows, int64_t longest, int64_t tokens);

// Partitions `order` (indices into `lengths`, longest first) into contiguous batches of at most
// `max_rows` that minimise the sum of their forward_cost. Returns the batches in order.
std::vector<std::vector<size_t>> length_batches(const std::vector<int64_t>& lengths, const std::vector<size_t>& order,
                                                int64_t max_rows);

}  // namespace sf::model
