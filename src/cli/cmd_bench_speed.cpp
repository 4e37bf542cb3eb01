// `superficial bench speed --model PATH`: the speed figures of a real model, each the median
// [min, max] of --runs repetitions, in the shape that scripts/bench-peers.py prints for
// transformers, so that both can be run side by side on the same weights:
//   scoring        teacher-forced forward of 8 x 256 tokens, logits at every position
//   decode b=1     greedy decoding, one prompt, --new-tokens tokens (no EOS: the length is fixed)
//   decode b=16    the same for 16 prompts decoded together
//   peak RSS       of the process after the batch-1 decodes (run first, so scoring's logits do not count)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bench_probe.hpp"
#include "cli/command.hpp"
#include "core/dtype.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"

namespace {

struct SpeedOptions {
  std::string model;
  int runs = 9;
  int threads = 2;
  int64_t new_tokens = 64;
  std::string dtype = "float32";
};

// {"median": m, "min": a, "max": b} of the samples.
nlohmann::json spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {{"median", median}, {"min", v.front()}, {"max", v.back()}};
}

// Deterministic prompts of 32 ids, distinct per row.
std::vector<std::vector<int32_t>> prompts(int64_t rows, int64_t vocab) {
  std::vector<std::vector<int32_t>> p(static_cast<size_t>(rows));
  for (size_t i = 0; i < p.size(); ++i) {
    for (int64_t t = 0; t < 32; ++t) {
      p[i].push_back(static_cast<int32_t>((static_cast<int64_t>(i) * 131 + t * 17 + 1000) % vocab));
    }
  }
  return p;
}

void bench_speed(const SpeedOptions& o) {
  at::set_num_threads(o.threads);
  sf::model::LoadOptions lo;
  lo.dtype = sf::parse_dtype(o.dtype, "bench speed --dtype");
  const auto model = sf::model::CausalLM::load(o.model, lo);
  const int64_t V = model.config().vocab_size;
  torch::InferenceMode guard;

  const auto decode = [&](int64_t batch) {
    sf::model::GenerateOptions g;
    g.batch_size = batch;
    g.max_new_tokens = o.new_tokens;
    const auto p = prompts(batch, V);
    std::vector<double> tps;
    sf::model::generate(model, p, g);  // warm-up
    for (int r = 0; r < o.runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      sf::model::generate(model, p, g);
      tps.push_back(static_cast<double>(batch * o.new_tokens) / sf::cli::seconds_since(t0));
    }
    return spread(tps);
  };
  nlohmann::json out;
  out["benchmark"] = "speed";
  out["tool"] = "superficial";
  out["model"] = o.model;
  out["dtype"] = o.dtype;
  out["threads"] = at::get_num_threads();
  out["runs"] = o.runs;
  out["decode_new_tokens"] = o.new_tokens;
  out["decode_b1_tokens_per_s"] = decode(1);
  out["peak_rss_decode_b1_mib"] = sf::cli::rss_now_and_peak_mb().second;
  out["decode_b16_tokens_per_s"] = decode(16);

  const int64_t B = 8, T = 256;
  const torch::Tensor ids = torch::randint(0, V, {B, T}, at::detail::createCPUGenerator(0), torch::kInt64);
  const torch::Tensor mask = torch::ones({B, T}, torch::kInt64);
  model.forward(ids, mask);  // warm-up
  std::vector<double> tps;
  for (int r = 0; r < o.runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(ids, mask);  // logits [B,T,V]
    tps.push_back(static_cast<double>(B * T) / sf::cli::seconds_since(t0));
  }
  out["scoring_batch"] = {B, T};
  out["scoring_tokens_per_s"] = spread(tps);
  out["load_avg_1m"] = sf::cli::load_average();
  std::printf("%s\n", out.dump().c_str());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<SpeedOptions>();
  auto* cmd = sf::cli::bench_group(app).add_subcommand(
      "speed", "Scoring and greedy decoding speed of a real model (peer: scripts/bench-peers.py)");
  cmd->add_option("--model", o->model, "Model folder or .gguf file")->required();
  cmd->add_option("--runs", o->runs, "Repetitions per figure")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--threads", o->threads, "Torch intra-op threads")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--new-tokens", o->new_tokens, "Tokens per decoded row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Compute dtype: float32, bfloat16 or float16")->capture_default_str();
  cmd->callback([o] { bench_speed(*o); });
}

}  // namespace

SF_COMMAND(setup);
