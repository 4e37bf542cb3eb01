#pragma once
// Full-parameter training of sf::model::CausalLM (the same forward as inference, with autograd):
// AdamW, linear warm-up then cosine decay, global gradient-norm clipping, gradient accumulation and
// data parallelism over MPI ranks (every rank builds the same global batch and takes its share;
// gradients are summed with Comm::allreduce_sum, so N ranks equal one rank up to summation order).
//
// Output folder `out`:
//   config.json, model.safetensors, tokenizer files   the trained model (HF layout)
//   loss.csv          step,loss,lr,grad_norm,tokens,seconds (one row per optimizer step)
//   train_config.yaml the resolved config;  train_summary.json  rows, tokens, final loss, hash
//   heldout*.jsonl    sft sources with `holdout:`: the held-out records, labelled (not trained on)
//   COMPLETE          written last: a finished run; `train` on it returns at once
//   checkpoints/step-NNNNNN/  model + tokenizer + optimizer.pt + trainer_state.json, while running
// A run finds its newest checkpoint and resumes from it (weights, AdamW moments, step; the data
// order is a function of seed and step). Checkpoints are removed once the model is complete.
// SIGTERM/SIGUSR1 stop every rank after the current step with a checkpoint (sf::Interrupted).
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.hpp"
#include "train/train_config.hpp"

namespace sf::train {

// Learning rate before optimizer step `step` (0-based): linear warm-up to lr over `warmup` steps,
// then cosine decay to min_lr at the last step.
double learning_rate(const TrainConfig& config, int64_t step);

// Sum over counted positions of -log p(labels[b,t] | ids[b,<t]); logits [B,T,V], labels [B,T].
torch::Tensor token_loss_sum(const torch::Tensor& logits, const torch::Tensor& labels);
// Positions whose label counts (t >= 1 and label != -100).
int64_t count_targets(const torch::Tensor& labels);
// How many final positions of a batch the loss needs logits for: from one before the earliest
// counted label to the end (>= 2). With left padding and labels at the rows' ends (sft), the lm_head
// can run on these positions only: token_loss_sum(logits[:, -w:], labels[:, -w:]) is the same loss.
int64_t loss_window(const torch::Tensor& labels);

// Marks the model's parameters trainable and builds AdamW over them: weight decay on matrices,
// none on vectors (norm weights, biases).
std::unique_ptr<torch::optim::AdamW> make_optimizer(const model::CausalLM& model, const TrainConfig& config);

struct TrainResult {
  bool cached = false;       // the output folder was already complete
  int64_t resumed_from = 0;  // step of the checkpoint resumed from (0: fresh)
  int64_t last_step = 0;     // steps done when this call returned
  bool complete = false;     // false when stopped by stop_after
};

// Trains (or resumes, or finds finished) the model the config describes. Every rank calls it.
TrainResult run_training(const TrainConfig& config);

}  // namespace sf::train
