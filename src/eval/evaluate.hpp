#pragma once
// `superficial evaluate`: every system (base, aligned, base+<head>) answers every task's test
// prompts; the answers, scores and per-token top-k logits go to run_dir/evaluate/results.h5
// (results-schema/results-v1).
//
// Work units are (task, system, chunk of examples), handed out to MPI ranks by a WorkQueue. Each
// unit is written as its own file evaluate/chunks/unit-NNNNNN.h5 (written under a temporary name and
// renamed when whole), so a killed job resumes by skipping the units whose files exist. Rank 0
// merges the chunk files into results.h5 in unit order.
//
// Job section:
//   evaluate:
//     systems: [base, aligned, base+hidden]  # base+<name>: the head run_dir/heads/<name>.safetensors
//     tasks: [gsm8k]            # optional subset of the job's tasks (default: all)
//     max_examples: 100         # per task (default: all)
//     chunk_examples: 16        # examples per work unit
//     batch_size: 8             # sequences per forward
//     record_top_k: 20          # top-k logits recorded per generated token
//     max_new_tokens: 64        # optional cap on every task's max_new_tokens (short test runs)
//     heads_dir: DIR            # optional; default run_dir/heads
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::eval {

struct SystemSpec {
  std::string name;  // base | aligned | base+<head>
  std::string role;  // the model role: base or aligned
  std::string head;  // head name, empty for base and aligned
  std::filesystem::path head_file;
};

struct EvaluateSettings {
  std::vector<SystemSpec> systems;
  std::vector<std::string> tasks;
  int64_t max_examples = -1;
  int64_t chunk_examples = 16;
  int64_t batch_size = 8;
  int64_t record_top_k = 20;
  int64_t max_new_tokens_cap = 0;  // 0: no cap
  std::filesystem::path tasks_dir = "configs/tasks";
};

// Reads and checks the job's `evaluate:` section (unknown keys are errors).
EvaluateSettings read_evaluate_settings(const Job& job);

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
void run_evaluate(const Job& job, const EvaluateSettings& settings, const dist::Comm& comm,
                  const ProgressFn& progress = {});

}  // namespace sf::eval
