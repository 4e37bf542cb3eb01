#pragma once
// Measurements shared by the `bench` subcommands: wall time, this process's memory, machine load.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <utility>

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

// The 1-minute load average (-1 when unknown).
inline double load_average() {
  double load1 = -1;
  std::ifstream("/proc/loadavg") >> load1;
  return load1;
}

}  // namespace sf::cli
