#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.hpp"

namespace sf::log {

void init(int rank, int world_size, const std::string& level) {
  auto logger = spdlog::stderr_color_mt("superficial");
  const std::string who = world_size > 1 ? fmt::format("[rank {}/{}] ", rank, world_size) : "";
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] " + who + "%v");
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    throw ConfigError("log level: unknown value '" + level + "' (trace, debug, info, warn, error, off)");
  }
  // Non-zero ranks stay quiet below warnings unless asked for debug output.
  if (rank > 0 && lvl == spdlog::level::info) lvl = spdlog::level::warn;
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

}  // namespace sf::log
