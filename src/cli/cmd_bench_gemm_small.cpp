// `superficial bench gemm-small`: the decoding kernel (kernels/small_gemm.hpp) against torch::linear
// (BLAS) on SmolLM2-135M's projection shapes, for 1 to 128 rows (the kernel up to kSmallGemmMaxRows), each weight read
// from memory (1 GiB of copies used in turn), and the machine's memory read bandwidth measured in the same run (a sum
// over 512 MiB). Prints one JSON object; per shape and row
// count the best of --runs: GFLOP/s and weight GB/s of both, and kernel / BLAS.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "cli/bench_probe.hpp"
#include "cli/command.hpp"
#include "kernels/small_gemm.hpp"

namespace {

struct GemmOptions {
  int runs = 20;
  int threads = 2;
};

void bench_gemm_small(const GemmOptions& o) {
  at::set_num_threads(o.threads);
  torch::InferenceMode guard;
  nlohmann::json out;
  out["benchmark"] = "gemm-small";
  out["threads"] = at::get_num_threads();
  out["kernel_supported"] = sf::kernels::small_gemm_supported();

  const torch::Tensor big = torch::ones({int64_t{128} << 20}, torch::kFloat32);  // 512 MiB
  const double read_s = sf::cli::best_seconds(5, [&] { big.sum(); });
  out["memory_read_gb_per_s"] = static_cast<double>(big.numel()) * 4 / read_s / 1e9;

  // (name, N, K): q/k/v and gate/up read the same input; down; the tied lm_head.
  const std::vector<std::tuple<std::string, int64_t, int64_t>> shapes{
      {"gate_up 3072x576", 3072, 576}, {"down 576x1536", 576, 1536}, {"lm_head 49152x576", 49152, 576}};
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [name, N, K] : shapes) {
    // Copies of the weight filling 1 GiB, used in turn: each product reads its weight from memory,
    // not from the caches, as when decoding a model larger than them.
    const torch::Tensor w0 = torch::randn({N, K}, at::detail::createCPUGenerator(1), torch::kFloat32);
    std::vector<torch::Tensor> copies{w0};
    while (static_cast<int64_t>(copies.size()) * w0.numel() * 4 < (int64_t{1} << 30)) copies.push_back(w0.clone());
    size_t turn = 0;
    const auto next = [&]() -> const torch::Tensor& { return copies[turn++ % copies.size()]; };
    for (int64_t M : {1, 2, 4, 8, 16, 32, 64, 128}) {
      const torch::Tensor x = torch::randn({M, K}, at::detail::createCPUGenerator(2), torch::kFloat32);
      const double flop = 2.0 * static_cast<double>(M * N * K), bytes = 4.0 * static_cast<double>(N * K);
      nlohmann::json row{{"shape", name}, {"rows", M}};
      const double blas_s = sf::cli::best_seconds(o.runs, [&] { torch::linear(x, next()); });
      row["blas_gflops"] = flop / blas_s / 1e9;
      row["blas_weight_gb_per_s"] = bytes / blas_s / 1e9;
      if (sf::kernels::small_gemm_applies(x, {w0, {}})) {
        const double kernel_s = sf::cli::best_seconds(o.runs, [&] { sf::kernels::small_gemm(x, {{next(), {}}}); });
        row["kernel_gflops"] = flop / kernel_s / 1e9;
        row["kernel_weight_gb_per_s"] = bytes / kernel_s / 1e9;
        row["kernel_vs_blas"] = blas_s / kernel_s;
      }
      rows.push_back(row);
    }
  }
  out["products"] = rows;
  out["load_avg_1m"] = sf::cli::load_average();
  std::printf("%s\n", out.dump().c_str());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<GemmOptions>();
  auto* cmd = sf::cli::bench_group(app).add_subcommand(
      "gemm-small", "The decoding kernel for products of a few rows against BLAS, and the memory bandwidth");
  cmd->add_option("--runs", o->runs, "Repetitions per figure (the best is kept)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Torch intra-op threads")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([o] { bench_gemm_small(*o); });
}

}  // namespace

SF_COMMAND(setup);
