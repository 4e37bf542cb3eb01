#pragma once
// `superficial evaluate`: every system of the study answers every task's test prompts; the
// answers, scores and per-token top-k logits go to run_dir/evaluate/results.h5
// (results-schema/results-v2), rows keyed by the systems' names.
//
// Work units are (system, task, chunk of examples), in that order, handed out to MPI ranks by a
// WorkQueue: ranks work through one system's units before the next, so a rank holds one system's
// models at a time. Each unit is written as its own file evaluate/chunks/unit-NNNNNN.h5 (written
// under a temporary name and renamed when whole), so a killed job resumes by skipping the units
// whose files exist. Rank 0 merges the chunk files into results.h5 in unit order. With
// parallel.tensor = T the units go to groups of T ranks instead (dist/layout.hpp): the group's
// models are split over its ranks, all of them answer the unit together and its first rank writes.
//
// Job section:
//   evaluate:
//     systems: [B7, A7]         # optional subset of the job's systems (default: all, in job order)
//     tasks: [gsm8k]            # optional subset of the job's tasks (default: all)
//     max_examples: 100         # per task (default: all)
//     chunk_examples: 16        # examples per work unit
//     batch_size: 8             # sequences per forward
//     record_top_k: 20          # top-k logits recorded per generated token
//     max_new_tokens: 64        # optional cap on every task's max_new_tokens (short test runs)
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "eval/answer.hpp"
#include "study/study.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::eval {

struct EvaluateSettings {
  std::vector<std::string> systems;  // names, in order
  std::vector<std::string> tasks;
  int64_t max_examples = -1;
  int64_t chunk_examples = 16;
  AnswerSettings answer;
  std::filesystem::path tasks_dir = "configs/tasks";
};

// Reads and checks the job's `evaluate:` section (unknown keys are errors).
EvaluateSettings read_evaluate_settings(const Job& job, const study::Study& study);

// Where the stage writes.
std::filesystem::path evaluate_dir(const Job& job);
std::filesystem::path results_path(const Job& job);
// True when results.h5 exists (it is renamed into place only when complete).
bool evaluate_complete(const Job& job);

// Progress of this rank, reported after every unit.
struct EvalProgress {
  int64_t units_done = 0;   // by this rank in this call
  int64_t units_total = 0;  // units to do in this call (all ranks)
  int64_t examples = 0;     // examples answered by this rank
  int64_t tokens = 0;       // tokens generated or scored by this rank
  double seconds = 0;
};
using ProgressFn = std::function<void(const EvalProgress&)>;

// Runs the stage on every rank of `comm` (collective). Throws Interrupted when stop_requested()
// becomes true between units (the finished units are kept).
void run_evaluate(const Job& job, const study::Study& study, const EvaluateSettings& settings, const dist::Comm& comm,
                  const ProgressFn& progress = {});

// The `systems` attribute of results files: per system {name, model, head, head_type, head_from,
// head_file, proxy, template, description}, in the settings' order.
nlohmann::json systems_attribute(const Job& job, const study::Study& study, const std::vector<std::string>& names);

}  // namespace sf::eval
