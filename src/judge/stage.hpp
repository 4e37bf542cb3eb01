#pragma once
// `superficial judge JOB.yaml` (and the stage of `superficial run` after evaluate): the judges of
// each task score the answers in evaluate/results.h5; verdicts go to judge/judgments.h5
// (results-schema/judgments-v1). Answers are never regenerated: a judge added to a finished run
// only runs that judge.
//
// Work units are (judge, task, system, chunk of answers) plus (judge, chunk of its held-out items),
// handed to MPI ranks by a WorkQueue, in judge order (a rank keeps one judge model loaded at a
// time). A unit is named by a hash of the judge (recipe, binding, model fingerprint) and of its
// exact inputs, and written whole as judge/units/<hash>.h5 (a temporary name renamed), so a killed
// job resumes with the units it finished, and units whose judge and inputs did not change are
// reused by later runs. Rank 0 then merges the units in plan order into judgments.h5, adding the
// all_of metrics and each judge's held-out accuracy. A judgments.h5 of the same plan is kept.
//
// Job keys: `judges:` (see judge/spec.hpp); the tasks and their folder come from the evaluate
// section (evaluate.tasks, evaluate.tasks_dir).
#include <filesystem>

#include "core/job.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::judge {

std::filesystem::path judge_dir(const Job& job);
std::filesystem::path judgments_path(const Job& job);

struct JudgeStageSummary {
  int64_t units = 0;         // of the plan
  int64_t units_reused = 0;  // found finished
  int64_t verdicts = 0;      // rows of judgments.h5
  bool skipped = false;      // judgments.h5 of the same plan existed
};

// The checks of run_judge that need no results and no model weights (tasks, bindings, prompt
// fields, held-out files, judge::preflight): `run` makes them before its first stage.
void check_judges(const Job& job);

// Runs the stage on every rank of `comm` (collective). Every check that needs no model weights is
// made before any compute (judge/plan.hpp). Throws Interrupted when stop_requested() becomes true
// between units (finished units are kept).
// heldout_only: only the judges' held-out units (no answers needed); their accuracies are logged and
// written to judge/heldout.json. The units are kept, so a later full run reuses them.
JudgeStageSummary run_judge(const Job& job, const dist::Comm& comm, bool heldout_only = false);

}  // namespace sf::judge
