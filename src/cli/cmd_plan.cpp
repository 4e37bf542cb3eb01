// `superficial plan JOB.yaml --gpus-per-node N --gpu-memory 80GiB`: memory per GPU of the job's
// models (weights, KV cache, activations) for each tensor-parallel size T that divides their KV
// heads, and the smallest T at which the whole job fits (model/memory_plan.hpp). Reads only the
// models' config.json files, never their weights.
//
// From the job: every model under `models` (path, dtype), the batch (the largest of
// extract.batch_size and evaluate.batch_size, default 8), the sequence length
// (extract.max_new_tokens, default 512, plus --prompt-tokens) and parallel.tensor when set.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/config.hpp"
#include "core/files.hpp"
#include "model/memory_plan.hpp"

namespace {

struct PlanArgs {
  std::string job;
  std::vector<std::string> overrides;
  int gpus_per_node = 8;
  std::string gpu_memory = "80GiB";
  std::string reserve = "4GiB";
  int64_t prompt_tokens = 512;
  std::optional<int64_t> batch, max_length;
};

int64_t section_int(const sf::ConfigNode& root, const std::string& section, const std::string& key, int64_t fallback) {
  if (!root.has(section)) return fallback;
  return root.child(section).get<int64_t>(key, fallback);
}

void plan(const PlanArgs& a) {
  const sf::ConfigNode root = sf::ConfigNode::parse(sf::read_text_file(a.job, "job file"), a.job, a.overrides);
  const int64_t batch = a.batch.value_or(
      std::max(section_int(root, "extract", "batch_size", 8), section_int(root, "evaluate", "batch_size", 8)));
  const int64_t length = a.max_length.value_or(section_int(root, "extract", "max_new_tokens", 512) + a.prompt_tokens);
  std::vector<sf::model::PlanInput> inputs;
  const sf::ConfigNode models = root.child("models");
  for (const auto& name : models.keys()) {
    const sf::ConfigNode m = models.child(name);
    const std::filesystem::path dir = m.get<std::string>("path");
    const std::string dtype = m.get<std::string>("dtype", "float32");
    if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16") {
      throw sf::ConfigError(m.where("dtype") + ": expected float32, bfloat16 or float16");
    }
    sf::model::PlanInput in;
    in.name = name + " (" + dir.string() + ")";
    in.config = sf::model::ModelConfig::from_file(dir / "config.json");
    in.dtype_bytes = dtype == "float32" ? 4 : 2;
    in.batch = batch;
    in.max_length = length;
    inputs.push_back(std::move(in));
  }
  sf::model::DeviceBudget device;
  device.gpus_per_node = a.gpus_per_node;
  device.gpu_memory = sf::model::parse_bytes(a.gpu_memory, "--gpu-memory");
  device.reserve = sf::model::parse_bytes(a.reserve, "--reserve");
  const sf::model::JobPlan p = sf::model::plan_job(inputs, device);
  std::printf("%s", p.table().c_str());
  if (root.has("parallel")) {
    const int tensor = root.child("parallel").get<int>("tensor", 1);
    try {
      p.check(tensor);
      std::printf("the job's parallel.tensor = %d fits\n", tensor);
    } catch (const sf::ConfigError&) {
      std::printf("the job's parallel.tensor = %d does NOT fit: `run` would refuse it\n", tensor);
    }
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
