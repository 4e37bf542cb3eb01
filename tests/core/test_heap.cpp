#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/heap.hpp"

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Minor page faults of one round of a forward pass's pattern: `n` blocks of `bytes` allocated,
// written and freed.
long faults_of_round(int n, size_t bytes) {
  const long before = minor_faults();
  std::vector<char*> blocks;
  for (int i = 0; i < n; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(bytes)));
    std::memset(blocks.back(), i + 1, bytes);
  }
  for (char* b : blocks) std::free(b);
  return minor_faults() - before;
}

}  // namespace

// glibc malloc only: a sanitizer build has its own allocator (with a quarantine of freed blocks).
// GCC says so with __SANITIZE_ADDRESS__, clang 14 only through __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define SF_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SF_TEST_ASAN 1
#endif
#endif

#if defined(__GLIBC__) && !defined(SF_TEST_ASAN)
// Rounds after the first reuse the heap's memory: 24 blocks of 4 MiB (96 MiB, under the kept free
// top) fault nothing in again. glibc's default policy faults most pages of every such round back in
// (mapped afresh, or trimmed and regrown), which is what the policy is for.
TEST(Heap, ReusedBlocksAreNotFaultedInAgain) {
  if (sf::heap::thresholds_set_in_environment()) GTEST_SKIP() << "glibc thresholds set in the environment";
  sf::heap::settle_after_load();
  constexpr int kBlocks = 24;
  constexpr size_t kBytes = size_t{4} << 20;
  const long pages = static_cast<long>(kBlocks * kBytes / 4096);
  faults_of_round(kBlocks, kBytes);  // the heap grows once
  for (int round = 0; round < 3; ++round) EXPECT_LT(faults_of_round(kBlocks, kBytes), pages / 50) << round;
}

// The thresholds are set once; calling again (a second model loaded) keeps them and still works.
TEST(Heap, SettlingTwiceKeepsThePolicy) {
  if (sf::heap::thresholds_set_in_environment()) GTEST_SKIP() << "glibc thresholds set in the environment";
  sf::heap::settle_after_load();
  sf::heap::settle_after_load();
  constexpr size_t kBytes = size_t{8} << 20;
  faults_of_round(4, kBytes);
  EXPECT_LT(faults_of_round(4, kBytes), static_cast<long>(4 * kBytes / 4096 / 50));
}
#endif
