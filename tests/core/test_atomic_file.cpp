// Files committed whole (core/atomic_file.hpp) under injected faults (core/fault.hpp): a failing
// write, fsync or rename leaves the old file (or none) under the final name, and the error is one
// line naming the file and the errno.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/fault.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

// Sets SUPERFICIAL_FAULT for the scope.
class Fault {
 public:
  explicit Fault(const std::string& value) { ::setenv("SUPERFICIAL_FAULT", value.c_str(), 1); }
  ~Fault() { ::unsetenv("SUPERFICIAL_FAULT"); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sf::IoError& e) {
    return e.what();
  }
  return "";
}

TEST(AtomicFile, WritesWholeFiles) {
  sf::test::TempDir dir("atomic");
  sf::write_file_atomically(dir / "a.json", "{\"x\": 1}\n");
  EXPECT_EQ(sf::test::read_file(dir / "a.json"), "{\"x\": 1}\n");
  sf::write_file_atomically(dir / "a.json", "second");
  EXPECT_EQ(sf::test::read_file(dir / "a.json"), "second");
  EXPECT_FALSE(fs::exists(dir / "a.json.part"));
}

TEST(AtomicFile, EveryInjectedFaultLeavesTheOldFileAndNamesFileAndErrno) {
  sf::test::TempDir dir("atomic");
  const fs::path file = dir / "summary.json";
  sf::write_file_atomically(file, "old");
  // write: the data; fsync 1: the file, fsync 2: its folder (after the rename); rename.
  for (const std::string fault : {"write:1:ENOSPC", "fsync:1:EIO", "rename:1:ENOSPC", "fsync:2:EIO"}) {
    std::string error;
    {
      const Fault f(fault);
      error = error_of([&] { sf::write_file_atomically(file, "new"); });
    }
    ASSERT_FALSE(error.empty()) << fault << " did not fail";
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_NE(error.find(fault.find("ENOSPC") != std::string::npos ? "(ENOSPC)" : "(EIO)"), std::string::npos) << error;
    EXPECT_NE(error.find(dir.path().string()), std::string::npos) << error;
    // Under the final name: the old file, or (a failed folder sync after the rename) the new one,
    // never a part of either.
    const std::string now = sf::test::read_file(file);
    EXPECT_TRUE(now == "old" || (fault == "fsync:2:EIO" && now == "new")) << fault << ": " << now;
    sf::write_file_atomically(file, "old");
  }
}

TEST(AtomicFile, FaultCountsOnlyMatchingPathsAndRestartsWithANewValue) {
  sf::test::TempDir dir("atomic");
  {
    const Fault f("write:2:EIO:target");
    sf::write_file_atomically(dir / "other1", "x");   // not counted
    sf::write_file_atomically(dir / "target1", "x");  // 1st
    EXPECT_NE(error_of([&] { sf::write_file_atomically(dir / "target2", "x"); }).find("target2.part"),
              std::string::npos);
    sf::write_file_atomically(dir / "target3", "x");  // only the 2nd fails
  }
  EXPECT_FALSE(fs::exists(dir / "target2"));
  EXPECT_TRUE(fs::exists(dir / "target3"));
  {
    const Fault f("nonsense");
    EXPECT_THROW(sf::write_file_atomically(dir / "x", "x"), sf::ConfigError);
  }
  {
    const Fault f("write:0:EIO");
    EXPECT_THROW(sf::write_file_atomically(dir / "x", "x"), sf::ConfigError);
  }
}

TEST(AtomicFile, KillFaultEndsTheProcessAtTheNthOperationAndLeavesTheOldFile) {
  sf::test::TempDir dir("atomic");
  const fs::path file = dir / "unit.h5";
  sf::write_file_atomically(file, "old");
  // The child writes one file whole, then dies by SIGKILL at the second rename (of `file`).
  EXPECT_EXIT(
      {
        ::setenv("SUPERFICIAL_FAULT", "rename:2:KILL", 1);
        sf::write_file_atomically(dir / "first", "x");
        sf::write_file_atomically(file, "new");
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "");
  EXPECT_EQ(sf::test::read_file(dir / "first"), "x");
  EXPECT_EQ(sf::test::read_file(file), "old");
  {
    const Fault f("rename:1:kill");
    EXPECT_THROW(sf::write_file_atomically(dir / "x", "x"), sf::ConfigError);
  }
}

TEST(AtomicFile, ErrnoText) {
  EXPECT_NE(sf::errno_text(ENOSPC).find("(ENOSPC)"), std::string::npos);
  EXPECT_NE(sf::errno_text(EIO).find("(EIO)"), std::string::npos);
  EXPECT_NE(sf::errno_text(EDQUOT).find("(EDQUOT)"), std::string::npos);
}

}  // namespace
