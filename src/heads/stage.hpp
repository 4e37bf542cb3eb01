#pragma once
// The train-head stage (`superficial train-head JOB.yaml`, and inside `superficial run`): trains
// every head the job's `heads:` section trains here (study/study.hpp) on its pair's logit
// dataset, data parallel over the ranks of `comm`.
//
// Outputs: <run_dir>/heads/<name>.safetensors (heads/head_set.hpp; metadata: the source pair,
// fingerprints of its base model and tokenizer, the training config, the validation example rows
// of the dataset, the final metrics) and <run_dir>/heads/<name>/metrics.jsonl (one JSON line per
// epoch and task, epoch 0 = before training). A head whose file exists with the same training
// config is skipped, so a requeued job continues with the next head.
#include "core/job.hpp"
#include "study/study.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::heads {

void run_train_heads(const Job& job, const study::Study& study, dist::Comm& comm);

}  // namespace sf::heads
