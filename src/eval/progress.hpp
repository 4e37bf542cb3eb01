#pragma once
// Progress of a multi-rank stage, aggregated on rank 0 without extra communication: every rank
// writes its counters to <dir>/rank-<r>.json after each unit; rank 0 sums the files it finds and
// prints one line (rewritten in place on a terminal, a plain log line at most every 30 s otherwise).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace sf::eval {

class ProgressBoard {
 public:
  ProgressBoard(std::filesystem::path dir, std::string stage, int rank, int size);
  // This rank's counters so far; `total` = units of the whole stage (all ranks).
  void update(int64_t done, int64_t total, int64_t examples, int64_t tokens, double seconds);
  // Rank 0: prints the final aggregate line (ends the terminal line).
  void finish();

 private:
  void print(bool final);
  std::filesystem::path dir_;
  std::string stage_;
  int rank_, size_;
  int64_t total_ = 0;
  bool tty_ = false;
  std::chrono::steady_clock::time_point last_print_{};
};

}  // namespace sf::eval
