#pragma once
// Subcommands register themselves: each src/cli/cmd_*.cpp defines
//   SF_COMMAND(setup_fn)   with   void setup_fn(CLI::App& app);
// which adds its subcommand(s) and their callbacks to the app. Callbacks throw sf::Error
// subclasses on failure; main prints the one-line message and exits non-zero.
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace sf::cli {

using Setup = std::function<void(CLI::App&)>;
std::vector<Setup>& registry();

// The `bench` group (`superficial bench NAME`), created on first use. Each benchmark adds its own
// subcommand to it and prints one JSON object on stdout.
CLI::App& bench_group(CLI::App& app);

struct Registrar {
  explicit Registrar(Setup s) { registry().push_back(std::move(s)); }
};

}  // namespace sf::cli

#define SF_CLI_CONCAT2(a, b) a##b
#define SF_CLI_CONCAT(a, b) SF_CLI_CONCAT2(a, b)
#define SF_COMMAND(fn) static const ::sf::cli::Registrar SF_CLI_CONCAT(sf_cli_registrar_, __LINE__)(fn)
