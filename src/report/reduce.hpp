#pragma once
// `superficial reduce RUN_DIR`: turns a run's outputs into run_dir/summary.json (schema
// results-schema/summary-v2.json), summary.md and report.html.
//
// Inputs: evaluate/results.h5 (v2; its job_config attribute is the job, its systems and
// comparisons attributes name what to report), and for every head trained in the run its file
// heads/<name>.safetensors with its pair's extract/<base>__<aligned>/logits.h5 for the
// per-position KL curves and the tokens the head moves most, both on the head's validation
// examples only.
//
// Job section (all optional):
//   reduce:
//     resamples: 1000        # bootstrap resamples
//     confidence: 0.95
//     seed: 1234             # default: the job's seed
//     kl_positions: 64       # first response positions in the KL curves (the paper's Figure 2)
//     kl_max_examples: 0     # validation examples used for KL and token shifts (0: all; else a
//                            # seeded sample taken round-robin across tasks)
//     top_tokens: 20         # promoted / demoted tokens listed per head
//
// Per-position KL at response position j, averaged over the validation examples that reach j:
//   KL(A ‖ X) = Σ_{i ∈ topk_A} p_i (log p_i − log q_X(i)),  p = softmax of the aligned model's stored
// top-k logits (renormalised over that support), q_X = the full-vocabulary softmax of X's logits,
// recomputed from the stored base hidden state and the base lm_head (X = base), plus the head's
// correction (X = base+head).
#include <filesystem>
#include <string>

#include "core/job.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/head_set.hpp"
#include "report/summary.hpp"

namespace sf::report {

struct ReduceSettings {
  EstimateSettings estimate;
  int64_t kl_positions = 64;
  int64_t kl_max_examples = 0;
  int64_t top_tokens = 20;
  static ReduceSettings from_job(const Job& job);
};

// Computes the summary of the run in `run_dir` (files are looked up there, not in the job's
// run_dir, so a moved run folder still reduces).
Summary reduce_run(const std::filesystem::path& run_dir, const Job& job, const ReduceSettings& settings);

// Checks `summary` against results-schema/summary-v2.json (FormatError listing the problems) and
// writes summary.json, summary.md and report.html into run_dir (each via a temporary file).
void write_summary(const std::filesystem::path& run_dir, const Summary& summary);

// Problems of an existing summary.json against the schema (empty: valid).
std::vector<std::string> check_summary_file(const std::filesystem::path& summary_json);

// The extracted examples reduce measures a head on: the rows of `ds` that the head's file records
// as its validation examples (never its training examples), at most `max` (0: all) — then a seeded
// sample taken round-robin across tasks. FormatError naming the head file when the record is
// missing or names rows outside the dataset.
std::vector<int64_t> held_out_rows(const extract::LogitDataset& ds, const heads::HeadSet& head,
                                   const std::filesystem::path& head_file, int64_t max, uint64_t seed);

// The job stored in results.h5 (attribute job_config).
Job job_from_results(const std::filesystem::path& results_h5);

}  // namespace sf::report
