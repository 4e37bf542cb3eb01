// The `superficial` command line: a thin layer over the core library. Errors from the library are
// typed; they are caught here, once, printed as one line and turned into a non-zero exit
// (MPI_Abort when running under MPI with more than one rank).
#include <mpi.h>

#include <cstdlib>
#include <string>

#include "cli/command.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace sf::cli {

std::vector<Setup>& registry() {
  static std::vector<Setup> r;
  return r;
}

CLI::App& bench_group(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App* s) { return s->get_name() == "bench"; })) return *sub;
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks; each prints one JSON object");
  bench->require_subcommand(1);
  return *bench;
}

}  // namespace sf::cli

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// The launcher's rank, read before MPI is initialised (so that logging knows it from the start).
int launcher_rank() {
  for (const char* n : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (std::getenv(n)) return env_int(n, 0);
  }
  return 0;
}

int launcher_size() {
  for (const char* n : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (std::getenv(n)) return env_int(n, 1);
  }
  return 1;
}

int fail(const std::string& what, int code) {
  std::fprintf(stderr, "superficial: error: %s\n", what.c_str());
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  return code;
}

// The first line of a message (libtorch errors carry a backtrace after it).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"superficial: measure how much of a language model's alignment is superficial"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(sf::build::kVersion) + " (" + sf::build::kGitSha + ")");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  for (const auto& setup : sf::cli::registry()) setup(app);
  int exit_code = 0;
  try {
    app.parse_complete_callback([&] { sf::log::init(launcher_rank(), launcher_size(), log_level); });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sf::Interrupted& e) {
    exit_code = fail(e.what(), 3);
  } catch (const sf::Error& e) {
    exit_code = fail(e.what(), 2);
  } catch (const c10::Error& e) {
    exit_code = fail("torch: " + first_line(e.what()), 2);
  } catch (const std::exception& e) {
    exit_code = fail(std::string("internal: ") + e.what(), 2);
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized && exit_code == 0) MPI_Finalize();
  return exit_code;
}
