// `superficial cuda-info`: whether this build and machine can run `device: cuda`, and the devices
// torch sees (exit 2 with one line when they cannot).
#include <cstdio>

#include "cli/command.hpp"
#include "core/error.hpp"

namespace {

void cuda_info() {
#ifdef SUPERFICIAL_WITH_CUDA
  if (!torch::cuda::is_available()) throw sf::ConfigError("cuda-info: this build has CUDA, but torch sees no GPU");
  std::printf("{\"cuda\": true, \"devices\": %lld}\n", static_cast<long long>(torch::cuda::device_count()));
#else
  throw sf::ConfigError("cuda-info: this build has no CUDA (configure with -DSUPERFICIAL_WITH_CUDA=ON)");
#endif
}

void setup(CLI::App& app) {
  app.add_subcommand("cuda-info", "Can this build and machine run device: cuda? (exit 2 if not)")->callback(cuda_info);
}

SF_COMMAND(setup);

}  // namespace
