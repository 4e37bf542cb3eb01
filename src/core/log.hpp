#pragma once
// Logging: spdlog, one line per event. Under MPI only rank 0 logs at info level by default;
// every rank logs warnings and errors with its rank in the prefix.
#include <spdlog/spdlog.h>

namespace sf::log {

// Called once per process (after MPI init, if any). `rank` < 0 means no MPI.
void init(int rank, int world_size, const std::string& level = "info");

}  // namespace sf::log
