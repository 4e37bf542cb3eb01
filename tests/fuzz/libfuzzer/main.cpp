// The libFuzzer entry of one fuzz target (SF_FUZZ_TARGET names its function in
// tests/fuzz/targets). A finding that is not a crash or sanitizer report by itself (an untyped
// exception) aborts, so that libFuzzer keeps the input.
#include <cstdio>
#include <cstdlib>

#include "fuzz/targets/targets.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The readers look for results-schema/ there; HDF5 stays quiet.
  setenv("SUPERFICIAL_SCHEMA_DIR", (sf::fuzz::source_dir() / "results-schema").c_str(), 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (const auto finding = sf::fuzz::guarded([&] { sf::fuzz::SF_FUZZ_TARGET(data, size); })) {
    std::fprintf(stderr, "fuzz target %s: %s\n", SF_FUZZ_TARGET_NAME, finding->c_str());
    std::abort();
  }
  return 0;
}
