#pragma once
// The train-head stage (`superficial train-head JOB.yaml`, and inside `superficial run`): trains
// every head listed in the job's `heads:` section on the logit dataset, data parallel over the
// ranks of `comm` (gradients summed with Comm::allreduce_sum).
//
//   heads:
//     dataset: runs/x/extract/logits.h5   # optional; default <run_dir>/extract/logits.h5
//     lr: 1.0e-3                          # Adam learning rate
//     epochs: 3
//     batch_tokens: 1024                  # positions per optimiser step, over all ranks
//     val_fraction: 0.1                   # share of EXAMPLES held out for validation
//     seed: 1234                          # optional; default the job's seed
//     variants:                           # each may override lr and epochs
//       - {name: hidden, type: hidden}
//       - {name: lowrank, type: hidden, rank: 16}
//       - {name: bb, type: bb, k: 100, rank: 64}
//       - {name: bias, type: bias, lr: 1.0e-2}
//
// Outputs: <run_dir>/heads/<name>.safetensors and <run_dir>/heads/<name>/metrics.jsonl (one JSON
// line per epoch, epoch 0 = before training). A head whose .safetensors exists with the same
// training config is skipped, so a requeued job continues with the next head.
#include "core/job.hpp"

namespace sf::dist {
class Comm;
}

namespace sf::heads {

void run_train_heads(const Job& job, dist::Comm& comm);

}  // namespace sf::heads
