// `superficial bench gemm-small`: the decoding kernel (kernels/small_gemm.hpp) against torch::linear
// (BLAS) on SmolLM2-135M's projection shapes, for 1 to 128 rows (the kernel up to small_gemm_max_rows), each weight
// read from memory (1 GiB of copies used in turn), and the machine's memory read bandwidth measured in the same run (a
// sum over 512 MiB). Prints one JSON object; per shape and row count the best of --runs: GFLOP/s and weight GB/s of
// both, and kernel / BLAS. With --dtype bfloat16 also, for up to 1024 rows (128 for the lm_head):
// kernels/widened_gemm.hpp (the products of CPUs without bf16 arithmetic) and float32 BLAS on float32 copies of the
// same weights, its peer; kernel_sums says which way small_gemm summed (native or widened). --isa avx2 runs the
// kernel's AVX2 tiles on an AVX-512 CPU (kernel_isa says which ran); to give BLAS the same
// instructions, run with OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernels).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "cli/bench_probe.hpp"
#include "cli/command.hpp"
#include "core/dtype.hpp"
#include "kernels/amx_gemm.hpp"
#include "kernels/small_gemm.hpp"
#include "kernels/widened_gemm.hpp"

namespace {

struct GemmOptions {
  int runs = 20;
  int threads = 2;
  std::string dtype = "float32";  // of the weights; x is float32 either way
  std::string isa;                // of small_gemm: avx512 or avx2; empty: the CPU's best
};

void bench_gemm_small(const GemmOptions& o) {
  at::set_num_threads(o.threads);
  torch::InferenceMode guard;
  nlohmann::json out;
  out["benchmark"] = "gemm-small";
  out["threads"] = at::get_num_threads();
  const torch::ScalarType wtype = sf::parse_dtype(o.dtype, "bench gemm-small --dtype");
  out["weight_dtype"] = o.dtype;
  const bool bf16 = wtype == torch::kBFloat16;
  const sf::kernels::Isa isa = o.isa.empty()     ? sf::kernels::best_isa()
                               : o.isa == "avx2" ? sf::kernels::Isa::kAvx2
                                                 : sf::kernels::Isa::kAvx512;
  // Native bf16 sums only on AVX-512.
  const sf::kernels::Bf16Sums sums =
      isa == sf::kernels::Isa::kAvx2 ? sf::kernels::Bf16Sums::kWidened : sf::kernels::bf16_sums();
  out["kernel_isa"] = sf::kernels::isa_name(isa);
  out["kernel_supported"] = bf16 ? sf::kernels::small_gemm_bf16_supported(sums, isa) : sf::kernels::cpu_has(isa);
  if (bf16) out["kernel_sums"] = sums == sf::kernels::Bf16Sums::kNative ? "native" : "widened";

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
    const torch::Tensor w0 = torch::randn({N, K}, at::detail::createCPUGenerator(1), torch::kFloat32).to(wtype);
    const int64_t wbytes = w0.numel() * static_cast<int64_t>(w0.element_size());
    std::vector<torch::Tensor> copies{w0};
    while (static_cast<int64_t>(copies.size()) * wbytes < (int64_t{1} << 30)) copies.push_back(w0.clone());
    // bf16 on a CPU with AMX: the same copies in the tile unit's layout (kernels/amx_gemm.hpp).
    std::vector<sf::kernels::AmxWeight> amx;
    if (wtype == torch::kBFloat16 && sf::kernels::amx_gemm_supported())
      for (const torch::Tensor& w : copies) amx.push_back(sf::kernels::amx_pack(w));
    // bf16: float32 copies of the same weights for the float32 peer of the widened products.
    std::vector<torch::Tensor> copies32;
    if (bf16) {
      const torch::Tensor w32 = w0.to(torch::kFloat32);
      while (static_cast<int64_t>(copies32.size()) * wbytes * 2 < (int64_t{1} << 30)) copies32.push_back(w32.clone());
    }
    size_t turn = 0;
    const auto next = [&]() -> const torch::Tensor& { return copies[turn++ % copies.size()]; };
    const bool lm_head = N > 8192;
    for (int64_t M : {1, 2, 4, 8, 12, 16, 24, 32, 64, 128, 256, 1024}) {
      if (M > 128 && (!bf16 || lm_head)) continue;
      const torch::Tensor x = torch::randn({M, K}, at::detail::createCPUGenerator(2), torch::kFloat32);
      const double flop = 2.0 * static_cast<double>(M * N * K), bytes = static_cast<double>(wbytes);
      nlohmann::json row{{"shape", name}, {"rows", M}};
      // bf16 weights: the product of bf16 operands, as the model's projections run it (oneDNN).
      const double blas_s = sf::cli::best_seconds(o.runs, [&] {
        if (wtype == torch::kFloat32)
          torch::linear(x, next());
        else
          torch::linear(x.to(wtype), next()).to(torch::kFloat32);
      });
      row["blas_gflops"] = flop / blas_s / 1e9;
      row["blas_weight_gb_per_s"] = bytes / blas_s / 1e9;
      if (!amx.empty()) {
        const double amx_s = sf::cli::best_seconds(o.runs, [&] {
          sf::kernels::amx_gemm(x, {{&amx[turn++ % amx.size()], {}}});
        });
        row["amx_gflops"] = flop / amx_s / 1e9;
        row["amx_vs_blas"] = blas_s / amx_s;
      }
      double f32_s = 0;
      if (bf16) {
        const double widened_s = sf::cli::best_seconds(o.runs, [&] { sf::kernels::widened_gemm(x, {next(), {}}); });
        f32_s = sf::cli::best_seconds(o.runs, [&] { torch::linear(x, copies32[turn++ % copies32.size()]); });
        row["widened_gflops"] = flop / widened_s / 1e9;
        row["widened_vs_blas"] = blas_s / widened_s;
        row["float32_blas_gflops"] = flop / f32_s / 1e9;
        row["widened_vs_float32_blas"] = f32_s / widened_s;
      }
      if (sf::kernels::small_gemm_applies(x, {w0, {}}, sums, isa)) {
        const double kernel_s = sf::cli::best_seconds(o.runs, [&] {
          sf::kernels::small_gemm(x, {{next(), {}}}, sums, isa);
        });
        row["kernel_gflops"] = flop / kernel_s / 1e9;
        row["kernel_weight_gb_per_s"] = bytes / kernel_s / 1e9;
        row["kernel_vs_blas"] = blas_s / kernel_s;
        if (M == 1 && !bf16) {
          // One row: the matrix-vector product the model runs where the kernel does not apply.
          const torch::Tensor x1 = x.reshape({-1});
          const double mv_s = sf::cli::best_seconds(o.runs, [&] { torch::mv(next(), x1); });
          row["mv_gflops"] = flop / mv_s / 1e9;
          row["kernel_vs_mv"] = mv_s / kernel_s;
        }
        if (bf16) row["kernel_vs_float32_blas"] = f32_s / kernel_s;
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
  cmd->add_option("--dtype", o->dtype, "Weight dtype: float32 or bfloat16 (x stays float32)")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  cmd->add_option("--isa", o->isa, "Instruction set of the kernel's tiles (default: the CPU's best)")
      ->check(CLI::IsMember({"avx512", "avx2"}));
  cmd->add_option("--threads", o->threads, "Torch intra-op threads")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([o] { bench_gemm_small(*o); });
}

}  // namespace

SF_COMMAND(setup);
