// io/h5_probe.hpp: a file on which libhdf5 itself crashes in the checking child (here the test seam
// SUPERFICIAL_FAULT=probe:n:KILL kills it, as a libhdf5 crash on a damaged file would: the fuzz inputs
// that did so are now refused by checks of the raw bytes before the child starts) is refused by
// File::open with one FormatError line naming the file, the step and the signal, and this process
// goes on; a file the child finds a damaged reference in is refused with the child's own message.
#include <gtest/gtest.h>

#include <cstdlib>

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
  const sf::test::TempDir dir("probe");
  const auto file = dir / "crashing.h5";
  {
    auto f = sf::h5::File::create(file);
    f.write_strings("answers", {"one"}, {"string", {}, 64, 0});
    f.close();
  }
  // A refused file is not remembered as checked: each new value of the variable starts a new count.
  for (const char* fault : {"probe:1:KILL:crashing", "probe:1:KILL:crashing.h5"}) {
    setenv("SUPERFICIAL_FAULT", fault, 1);
    const std::string m = open_error(file);
    EXPECT_EQ(m, file.string() +
                     ": libhdf5 crashed (Killed) opening the file, in the process that checks a file before it is "
                     "read (a damaged file)");
  }
  setenv("SUPERFICIAL_FAULT", "probe:2:KILL:crashing", 1);  // the second check would fail; this is the first
  EXPECT_EQ(sf::h5::File::open(file).dataset("answers").read_all_strings()[0], "one");
  unsetenv("SUPERFICIAL_FAULT");
}

TEST(H5Probe, TheChildsFormatErrorIsThrownHere) {
  const auto file = sf::test::source_dir() / "tests/fuzz/regressions/h5/global-heap-bad-object-index.h5";
  const std::string m = open_error(file);
  EXPECT_EQ(m.rfind(file.string() + ": attribute 'tasks' of /, element 0: refers to object 65535", 0), 0u) << m;
}

TEST(H5Probe, AFileWhoseLinksCannotAllBeListedIsRefused) {
  // h5 fuzz finding: a symbol table entry of /heldout whose name libhdf5 refuses stopped the listing
  // there, so the objects after it went unchecked, and a reader opening one by name then copied a
  // string past libhdf5's heap buffer.
  const auto file = sf::test::source_dir() / "tests/fuzz/regressions/h5/links-cannot-be-listed.h5";
  const std::string m = open_error(file);
  EXPECT_EQ(m.rfind(file.string() + ": libhdf5 cannot list the links of every group after ", 0), 0u) << m;
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
