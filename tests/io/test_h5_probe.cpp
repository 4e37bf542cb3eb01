// io/h5_probe.hpp: a file on which libhdf5 itself crashes (here: a dataset whose chunk dimension is 0,
// a division by zero when libhdf5 opens it; h5 fuzz finding) is refused by File::open with one
// FormatError line naming the file, the step and the signal, and this process goes on; a file the
// child finds a damaged reference in is refused with the child's own message.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "testutil/testutil.hpp"

namespace {

std::string open_error(const std::filesystem::path& p) {
  try {
    sf::h5::File::open(p);
  } catch (const sf::FormatError& e) {
    return e.what();
  }
  return "(opened)";
}

TEST(H5Probe, ACrashOfLibhdf5InTheChildIsAFormatErrorHere) {
  const auto file = sf::test::source_dir() / "tests/fuzz/regressions/h5/chunk-dimension-zero.h5";
  for (int i = 0; i < 2; ++i) {  // a refused file is not remembered as checked
    const std::string m = open_error(file);
    EXPECT_NE(m.find(file.string() + ": libhdf5 crashed (Floating point exception)"), std::string::npos) << m;
    EXPECT_NE(m.find("in the process that checks a file before it is read"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(H5Probe, TheChildsFormatErrorIsThrownHere) {
  const auto file = sf::test::source_dir() / "tests/fuzz/regressions/h5/global-heap-bad-object-index.h5";
  const std::string m = open_error(file);
  EXPECT_EQ(m.rfind(file.string() + ": attribute 'tasks' of /, element 0: refers to object 65535", 0), 0u) << m;
}

TEST(H5Probe, AFileIsCheckedOnceAndOpensAsBefore) {
  const sf::test::TempDir dir("probe");
  const auto p = dir / "a.h5";
  {
    auto f = sf::h5::File::create(p);
    f.set_attr("note", "text");
    f.write_strings("answers", {"one", "two"}, {"string", {}, 64, 4});
    f.close();
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sf::h5::File::open(p).dataset("answers").read_all_strings()[1], "two");
}

}  // namespace
