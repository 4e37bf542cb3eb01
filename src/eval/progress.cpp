#include "eval/progress.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace sf::eval {

ProgressBoard::ProgressBoard(std::filesystem::path dir, std::string stage, int rank, int size)
    : dir_(std::move(dir)), stage_(std::move(stage)), rank_(rank), size_(size), tty_(isatty(fileno(stderr)) != 0) {
  std::filesystem::create_directories(dir_);
}

void ProgressBoard::update(int64_t done, int64_t total, int64_t examples, int64_t tokens, double seconds) {
  total_ = total;
  const auto file = dir_ / (stage_ + "-rank-" + std::to_string(rank_) + ".json");
  const auto part = file.string() + ".part";
  {
    std::ofstream out(part, std::ios::trunc);
    out << nlohmann::json{{"done", done}, {"examples", examples}, {"tokens", tokens}, {"seconds", seconds}}.dump();
  }
  std::filesystem::rename(part, file);  // readers never see a half-written file
  if (rank_ == 0) print(false);
}

void ProgressBoard::finish() {
  if (rank_ == 0) print(true);
}

void ProgressBoard::print(bool final) {
  const auto now = std::chrono::steady_clock::now();
  if (!final && !tty_ && now - last_print_ < std::chrono::seconds(30)) return;
  last_print_ = now;
  int64_t done = 0, examples = 0, tokens = 0;
  double seconds = 0;
  int reporting = 0;
  for (int r = 0; r < size_; ++r) {
    std::ifstream in(dir_ / (stage_ + "-rank-" + std::to_string(r) + ".json"));
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) continue;
    done += j.value("done", int64_t{0});
    examples += j.value("examples", int64_t{0});
    tokens += j.value("tokens", int64_t{0});
    seconds = std::max(seconds, j.value("seconds", 0.0));
    ++reporting;
  }
  char line[256];
  std::snprintf(line, sizeof(line), "%s: %lld/%lld units, %lld examples, %.1f tokens/s (%d/%d ranks reporting)",
                stage_.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                static_cast<long long>(examples), seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0, reporting,
                size_);
  if (tty_) {
    std::fprintf(stderr, "\r%s%s", line, final ? "\n" : "");
    std::fflush(stderr);
  } else {
    spdlog::info("{}", line);
  }
}

}  // namespace sf::eval
