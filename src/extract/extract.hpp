#pragma once
// The extract stage: the aligned model answers every training prompt of the job's tasks greedily,
// its top-k logits recorded at each step it takes (the distribution that chose the token, as the
// reference's lock-step loop keeps them); the base model is then teacher-forced on the same answer
// tokens after its own prompt, and its top-k logits and final hidden states at the answer positions
// are written with them as a logit dataset (results-schema/logits-v1).
//
// Runs once per (base, aligned) pair of the study's trained heads, into
// <run_dir>/extract/<base>__<aligned>/ (study::Study::extract_dir). The pair's models keep their
// roles in the file: `aligned` answers, `base` is teacher-forced.
// A stop signal is honoured between chunks.
//
// Job section (every key optional):
//   extract:
//     split: train            # task split whose prompts are answered (train | test)
//     max_examples: -1        # per task; -1 = all; or per task: {gsm8k: 1000, advbench: 420}
//     max_new_tokens: 512
//     top_k: 500
//     batch_size: 8           # rows decoded together (continuous batching over the chunk) and
//                             # sequences per teacher-forced forward
//     hidden_dtype: float16   # float16 | bfloat16 (storage of the base hidden states)
//     compression: gzip       # gzip | none
//     compression_level: 4    # gzip level 1..9
//     chunk_examples: 16      # examples per work chunk = per shard file (the unit of resume); a
//                             # few times batch_size keeps the decoding slots full
//     chunk_rows: 64          # token rows per HDF5 chunk
//
// Prompts come from each task file's split (configs/tasks/<name>.yaml: file, format, field), shown
// to each model as the task shows them at evaluation: the task's user message under the model's
// chat template, then the task's answer prefix. Generation also ends at the task's stop strings.
//
// Output under the pair's folder: shards/chunk-NNNNNN.h5 (one per chunk, written by whichever
// rank ran it; with parallel.tensor = T the chunks go to groups of T ranks holding the models split,
// and a group's first rank writes) and logits.h5 (kind=merged) presenting them all. Re-running the same command after
// a crash continues with the chunks that have no finished shard.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "dist/comm.hpp"
#include "study/study.hpp"

namespace sf::extract {

struct ExtractOptions {
  std::string split = "train";
  int64_t max_examples = -1;                            // every task's, unless listed below
  std::map<std::string, int64_t> max_examples_by_task;  // per task
  int64_t max_new_tokens = 512;
  int64_t top_k = 500;
  int64_t batch_size = 8;
  std::string hidden_dtype = "float16";
  int gzip_level = 4;  // 0 = compression: none
  int64_t chunk_examples = 16;
  int64_t chunk_rows = 64;

  int64_t max_examples_for(const std::string& task) const;
  // Reads and checks the `extract:` section (unknown keys are ConfigErrors).
  static ExtractOptions from_job(const Job& job);
};

struct RankStats {
  int rank = 0;
  int64_t chunks = 0;
  int64_t examples = 0;
  int64_t tokens = 0;  // response tokens extracted
  // The matrix products its examples need at the least (model/flops.hpp; this rank's share when the
  // models are split): the aligned model's prompt and answer but its last token through the layers
  // and the lm_head at the steps that chose a token; the base model's likewise, teacher-forced.
  double product_flops = 0;
  double busy_s = 0;  // generating, scoring and writing
  double wall_s = 0;  // from the first chunk request to the end barrier
  double idle_fraction() const { return wall_s > 0 ? 1.0 - busy_s / wall_s : 0.0; }
};

struct ExtractSummary {
  std::filesystem::path output;  // the merged logits.h5
  int64_t num_items = 0;
  int64_t num_tokens = 0;
  int64_t chunks_total = 0;
  int64_t chunks_resumed = 0;    // finished shards found at the start
  int64_t bytes = 0;             // shard bytes on disk
  std::vector<RankStats> ranks;  // every rank's statistics (on rank 0; this rank's elsewhere)
};

// Runs the stage on every rank of `comm` (collective). Throws Interrupted after SIGTERM/SIGUSR1
// (the chunk in progress is discarded; finished ones are kept for the next run).
ExtractSummary run_extract(const Job& job, const study::Study& study, const study::Pair& pair, const dist::Comm& comm);

}  // namespace sf::extract
