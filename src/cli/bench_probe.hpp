#pragma once
// Measurements shared by the `bench` subcommands: wall time, this process's memory, the machine's
// GEMM rate and load.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace sf::cli {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The shortest of `runs` timed calls of f, after one untimed warm-up call.
template <typename F>
double best_seconds(int runs, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// This process's resident memory now and at its peak, in MiB (/proc/self/status VmRSS, VmHWM).
inline std::pair<double, double> rss_now_and_peak_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  double rss = -1, hwm = -1;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stod(line.substr(6)) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stod(line.substr(6)) / 1024.0;
  }
  return {rss, hwm};
}

// The best GFLOP/s of float32 x[rows,K] @ w[N,K]^T (torch::linear's layout) on the CPU, through
// libtorch's BLAS, over the given (N, K) shapes, each the best of `reps` after a warm-up: the rate
// that a measured time's products are compared with.
inline double gemm_peak_gflops(const std::vector<std::pair<int64_t, int64_t>>& shapes, int64_t rows, int reps) {
  torch::InferenceMode guard;
  double peak = 0;
  for (const auto& [n, k] : shapes) {
    const torch::Tensor x = torch::randn({rows, k}), w = torch::randn({n, k});
    const double s = best_seconds(reps, [&] { torch::mm(x, w.t()); });
    peak = std::max(peak, 2.0 * static_cast<double>(rows) * static_cast<double>(k) * static_cast<double>(n) / s / 1e9);
  }
  return peak;
}

// The 1-minute load average (-1 when unknown).
inline double load_average() {
  double load1 = -1;
  std::ifstream("/proc/loadavg") >> load1;
  return load1;
}

}  // namespace sf::cli
