#pragma once
// Training rows built from a TrainConfig's data sources, and the order in which they are drawn.
//
// pretrain: every record's rendered text is encoded with the tokenizer's special tokens (BOS for
// Llama-style tokenizers) and followed by EOS; the documents are shuffled with the seed,
// concatenated and cut into rows of exactly seq_len tokens (the last partial row is dropped).
// The loss counts every position.
// Sources may reshape their records first (split, unique; see train_config.hpp) and, for
// sft / compromise, hold some out (holdout): those are not trained on and are returned labelled.
// sft / compromise: one row per record: the prompt rendered with the chat template (plus the
// source's answer_prefix, as evaluation tasks append it), then the response and EOS, cut at seq_len. The loss counts
// only the response and EOS positions.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/train_config.hpp"

namespace sf::train {

constexpr int64_t kIgnoreLabel = -100;

// One training row. labels[t] is ids[t] where predicting token t counts in the loss, kIgnoreLabel
// elsewhere (labels[0] never counts: nothing predicts the first token).
struct Sequence {
  std::vector<int32_t> ids;
  std::vector<int64_t> labels;
};

// A padded micro-batch: padding with `pad_id` (right, or left), mask 0 and label kIgnoreLabel on it.
struct Batch {
  torch::Tensor ids;     // [B,T] int64
  torch::Tensor mask;    // [B,T] int64, 1 for real tokens
  torch::Tensor labels;  // [B,T] int64
};

// One SFT row: prompt tokens (masked), then response tokens and EOS (counted), cut at seq_len.
Sequence make_sft_sequence(const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& response_ids,
                           int32_t eos_id, int64_t seq_len);

// Documents cut into rows of seq_len tokens; every position counts.
std::vector<Sequence> pack_documents(const std::vector<std::vector<int32_t>>& documents, int64_t seq_len);

struct BuiltRows {
  std::vector<Sequence> rows;
  std::map<std::string, int64_t> records_per_source;   // source ("data[i] file") → records used
  int64_t skipped = 0;                                 // sft: records whose prompt alone fills seq_len
  int64_t tokens = 0;                                  // tokens in all rows
  std::map<std::string, std::vector<Record>> heldout;  // sft: held-out file -> records (fields + "label")
};

// Where a held-out key falls: a number in [0, 1) from its SHA-256 (the first 52 bits), the same on
// every platform. A record is held out when this is below the source's holdout fraction.
double holdout_draw(const std::string& key);

// Reads the config's sources under data_root and builds the rows for its recipe.
BuiltRows build_rows(const TrainConfig& config, const tok::Tokenizer& tokenizer, int32_t eos_id);

// Stacks rows into a batch of the longest row's length, padded on the right (or on the left).
Batch collate(const std::vector<const Sequence*>& rows, int32_t pad_id, bool left_pad = false);

// The global batch of step s: rows s*B .. s*B+B-1 of an endless stream made of one seeded
// permutation of all rows per epoch. A pure function of (seed, step), so resuming needs no state.
class RowSampler {
 public:
  RowSampler(int64_t num_rows, uint64_t seed);
  std::vector<int64_t> batch(int64_t step, int64_t batch_size) const;

 private:
  const std::vector<int64_t>& permutation(int64_t epoch) const;
  int64_t num_rows_;
  uint64_t seed_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_;
};

// Fisher-Yates with std::mt19937_64: the same order on every platform and libtorch version.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace sf::train
