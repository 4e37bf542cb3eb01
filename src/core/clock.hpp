#pragma once
// Wall-clock helpers shared by the stages: timestamps for provenance and elapsed seconds.
#include <chrono>
#include <string>

namespace sf {

// UTC now as ISO 8601, e.g. 2026-12-01T12:00:00Z (the `created` attribute of every output).
std::string utc_now_iso8601();

// Seconds elapsed since construction (steady clock).
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sf
