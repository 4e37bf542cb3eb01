// The memory plan: weights per rank equal the bytes the model actually holds, the KV-cache figure
// equals the cache generation allocates, sizes parse, and a T that does not fit is refused with the
// table. (The T = 2 weights per rank are checked against a split model in test_tensor_parallel.)
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "model/causal_lm.hpp"
#include "model/memory_plan.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::ModelConfig;

constexpr uint64_t kGiB = 1ull << 30;

sf::model::PlanInput input(const ModelConfig& c, int64_t dtype_bytes, int64_t batch, int64_t length) {
  sf::model::PlanInput in;
  in.name = c.model_type;
  in.config = c;
  in.dtype_bytes = dtype_bytes;
  in.batch = batch;
  in.max_length = length;
  return in;
}

sf::model::DeviceBudget gpus(int per_node, uint64_t memory) {
  sf::model::DeviceBudget d;
  d.gpus_per_node = per_node;
  d.gpu_memory = memory;
  return d;
}

uint64_t held_bytes(const CausalLM& m) {
  uint64_t n = 0;
  for (const auto& [name, t] : m.named_parameters()) n += static_cast<uint64_t>(t.numel() * t.element_size());
  return n;
}

TEST(MemoryPlan, WeightsAreWhatTheModelHolds) {
  for (const char* variant : {"llama_tied", "llama_untied", "qwen2"}) {
    const auto c = ModelConfig::from_file(sf::test::fixtures_dir() / "models" / variant / "config.json");
    const auto plan = sf::model::plan_model(input(c, 4, 1, 8), gpus(8, 80 * kGiB));
    ASSERT_FALSE(plan.rows.empty());
    EXPECT_EQ(plan.rows[0].tensor, 1);
    EXPECT_EQ(plan.rows[0].weights, held_bytes(CausalLM::random(c, 0))) << variant;
    for (const auto& r : plan.rows) EXPECT_EQ(c.num_key_value_heads % r.tensor, 0) << variant;
  }
}

TEST(MemoryPlan, KvCacheIsWhatGenerationReserves) {
  torch::InferenceMode guard;
  const auto c = ModelConfig::from_file(sf::test::fixtures_dir() / "models" / "qwen2" / "config.json");
  const auto model = CausalLM::random(c, 0);
  const int64_t B = 3, prompt = 5, length = 20;
  sf::model::KVCache cache;
  cache.reserve(length);
  model.forward(torch::ones({B, prompt}, torch::kInt64), torch::ones({B, prompt}, torch::kInt64), &cache);
  uint64_t bytes = 0;
  for (size_t i = 0; i < cache.keys.size(); ++i) {
    bytes += static_cast<uint64_t>(cache.keys[i].numel() + cache.values[i].numel()) * 4;
  }
  EXPECT_EQ(sf::model::plan_model(input(c, 4, B, length), gpus(1, kGiB)).rows.at(0).kv_cache, bytes);
}

TEST(MemoryPlan, Llama2_70bPairNeedsSeveralGpus) {
  const auto c =
      ModelConfig::from_file(sf::test::shared_dir() / "models" / "meta-llama--Llama-2-70b-chat-hf" / "config.json");
  const auto job = sf::model::plan_job({input(c, 2, 16, 1024), input(c, 2, 16, 1024)}, gpus(8, 80 * kGiB));
  ASSERT_EQ(job.rows.size(), 4u);                                // T = 1, 2, 4, 8: the divisors of 8 KV heads
  EXPECT_EQ(job.models[0].rows[0].weights, 68976648192ull * 2);  // Llama-2-70B's parameter count
  // At T = 8 every rank holds 1/8 of the two models plus their whole norms (2 per layer + final).
  const uint64_t norms = (2 * 80 + 1) * 8192 * 2;
  EXPECT_EQ(job.rows[3].weights * 8, job.rows[0].weights + 7 * 2 * norms);
  EXPECT_FALSE(job.rows[0].fits(job.device));
  ASSERT_TRUE(job.smallest_fit().has_value());
  EXPECT_GT(*job.smallest_fit(), 1);
  EXPECT_NO_THROW(job.check(8));
  try {
    job.check(1);
    ADD_FAILURE() << "T = 1 cannot hold a 70B pair in 80 GiB";
  } catch (const sf::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("parallel.tensor = 1 does not fit", 0), 0u) << m;
    EXPECT_NE(m.find("smallest T that fits: " + std::to_string(*job.smallest_fit())), std::string::npos) << m;
  }
  EXPECT_THROW(job.check(3), sf::ConfigError);  // 3 does not divide 8 KV heads
  // Fewer GPUs per node: T is at most that.
  EXPECT_EQ(sf::model::plan_job({input(c, 2, 16, 1024)}, gpus(2, 80 * kGiB)).rows.size(), 2u);
}

TEST(MemoryPlan, SizesParseAndBadOnesAreNamed) {
  EXPECT_EQ(sf::model::parse_bytes("80GiB", "k"), 80 * kGiB);
  EXPECT_EQ(sf::model::parse_bytes("80 GB", "k"), 80000000000ull);
  EXPECT_EQ(sf::model::parse_bytes("1.5TiB", "k"), 1536 * kGiB);
  EXPECT_EQ(sf::model::parse_bytes("4096", "k"), 4096u);
  for (const char* bad : {"", "GiB", "80XB", "-1GiB", "1e999GiB", "0"}) {
    EXPECT_THROW(sf::model::parse_bytes(bad, "--gpu-memory"), sf::ConfigError) << bad;
  }
}

TEST(MemoryPlan, CliPrintsTheTableForAJob) {
  sf::test::TempDir dir("plan-cli");
  const auto model = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-70b-chat-hf";
  sf::test::write_file(dir / "job.yaml", "run_dir: runs/x\nparallel: {tensor: 8}\nmodels:\n  base: {path: " +
                                             model.string() + ", template: plain, dtype: bfloat16}\n" +
                                             "extract: {batch_size: 16, max_new_tokens: 512}\n");
  const auto r = sf::test::run_command(sf::test::cli_path().string() + " plan " + (dir / "job.yaml").string() +
                                       " --gpus-per-node 8 --gpu-memory 80GiB 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("batch 16 x 1024 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("smallest T that fits:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the job's parallel.tensor = 8 fits"), std::string::npos) << r.output;
  const auto bad = sf::test::run_command(sf::test::cli_path().string() + " plan " + (dir / "job.yaml").string() +
                                         " --gpu-memory lots 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--gpu-memory: 'lots' is not a size"), std::string::npos) << bad.output;
}

}  // namespace
