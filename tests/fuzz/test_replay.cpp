// The fuzz targets (tests/fuzz/targets) on their committed seed corpora (tests/fuzz/corpus/<target>)
// and on every input a fuzzing campaign found a problem with (tests/fuzz/regressions/<target>):
// each input must be accepted or refused with a typed error (sf::Error), never crash or throw
// anything else. In the ASan+UBSan build (README: Sanitizers) a memory error or undefined
// behaviour while reading them fails the test too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "fuzz/targets/targets.hpp"

namespace sf::fuzz {
namespace {

std::vector<std::filesystem::path> inputs_of(const std::string& target) {
  std::vector<std::filesystem::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const std::filesystem::path dir = source_dir() / "tests/fuzz" / kind / target;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class Replay : public ::testing::TestWithParam<NamedTarget> {};

TEST_P(Replay, EveryCommittedInputIsAcceptedOrRefusedWithATypedError) {
  setenv("SUPERFICIAL_SCHEMA_DIR", (source_dir() / "results-schema").c_str(), 1);
  const NamedTarget& target = GetParam();
  const std::vector<std::filesystem::path> files = inputs_of(target.name);
  ASSERT_FALSE(files.empty()) << "no seed corpus for fuzz target " << target.name;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto finding = guarded([&] { target.run(bytes.data(), bytes.size()); });
    EXPECT_FALSE(finding.has_value()) << file.string() << ": " << finding.value_or("");
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Replay, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<NamedTarget>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace sf::fuzz
