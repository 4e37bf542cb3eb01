// `superficial plan JOB.yaml --gpus-per-node N --gpu-memory 80GiB`: memory per GPU of the job's
// models (weights, KV cache, activations) for each tensor-parallel size T that divides their KV
// heads, and the smallest T at which the whole job fits (model/memory_plan.hpp). Reads only the
// models' configs (config.json or GGUF metadata), never their weights.
//
// From the job: every model under `models` (path, dtype), the batch (the largest of
// extract.batch_size and evaluate.batch_size, default 8), the sequence length
// (extract.max_new_tokens, default 512, plus --prompt-tokens) and parallel.tensor (default 1).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/job.hpp"
#include "model/memory_plan.hpp"

namespace {

struct PlanArgs {
  std::string job;
  std::vector<std::string> overrides;
  int gpus_per_node = 8;
  std::string gpu_memory = "80GiB";
  std::string reserve = "4GiB";
  int64_t prompt_tokens = sf::model::kPlanPromptTokens;
  std::optional<int64_t> batch, max_length;
};

void plan(const PlanArgs& a) {
  const sf::Job job = sf::Job::load(a.job, a.overrides);
  sf::model::DeviceBudget device;
  device.gpus_per_node = a.gpus_per_node;
  device.gpu_memory = sf::model::parse_bytes(a.gpu_memory, "--gpu-memory");
  device.reserve = sf::model::parse_bytes(a.reserve, "--reserve");
  const sf::model::JobPlan p =
      sf::model::plan_job(sf::model::plan_inputs(job, a.prompt_tokens, a.batch, a.max_length), device);
  std::printf("%s", p.table().c_str());
  const int tensor = job.tensor_parallel();
  try {
    p.check(tensor);
    std::printf("the job's parallel.tensor = %d fits\n", tensor);
  } catch (const sf::ConfigError&) {
    std::printf("the job's parallel.tensor = %d does NOT fit: `run` would refuse it\n", tensor);
  }
}

void setup_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Memory per GPU of a job's models for each tensor-parallel size");
  cmd->add_option("job", a->job, "Job file (YAML)")->required();
  cmd->add_option("--set", a->overrides, "Override a job key: key.path=value (repeatable)");
  cmd->add_option("--gpus-per-node", a->gpus_per_node, "GPUs per node (the largest T)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--gpu-memory", a->gpu_memory, "Memory per GPU (80GiB, 40GB, ...)")->capture_default_str();
  cmd->add_option("--reserve", a->reserve, "Memory per GPU kept for the CUDA context, NCCL and allocator slack")
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Prompt tokens added to extract.max_new_tokens")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "Sequences per forward (default: from the job)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length, "Tokens per sequence (default: from the job)")
      ->check(CLI::PositiveNumber);
  cmd->callback([a] { plan(*a); });
}

SF_COMMAND(setup_plan);

}  // namespace
