// io/h5_group_check.hpp: every link name a group keeps in its local heap must be a NUL-terminated
// string inside that heap, checked on the raw bytes before libhdf5 copies one (libhdf5 1.10 reads
// past the heap otherwise: h5 fuzz finding). Files the project writes, with nested groups and a
// group large enough for a B-tree of several levels, pass with every name counted; a damaged name
// offset, an unterminated name and a symbol table node claiming more entries than the superblock
// allows are refused by File::open with one line naming the file and the group.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/h5_group_check.hpp"
#include "io/h5_raw.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

constexpr int kMembers = 300;  // more than one symbol table node (8 entries) and one B-tree leaf level holds

fs::path write_groups(const fs::path& dir) {
  const fs::path p = dir / "groups.h5";
  auto f = sf::h5::File::create(p);
  const auto big = f.create_group("big");
  for (int i = 0; i < kMembers; ++i)
    big.write_strings("member-" + std::to_string(i), {"a", "bc"}, {"string", {}, 2, 0});
  f.create_group("a").create_group("b").create_group("c").write_strings("deep", {"x"}, {"string", {}, 1, 0});
  f.close();
  return p;
}

uint64_t names_in(const fs::path& p, const std::string& bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const sf::h5::Superblock sb = sf::h5::read_superblock(data, bytes.size());
  return sf::h5::check_group_names(p, data, bytes.size(), sb);
}

// The message of the FormatError File::open throws for `bytes` written to `p`, or "" if it opens.
std::string open_error(const fs::path& p, const std::string& bytes) {
  sf::test::write_file(p, bytes);
  try {
    (void)sf::h5::File::open(p);
  } catch (const sf::FormatError& e) {
    return e.what();
  }
  return "";
}

// Byte offset of the first symbol table node ("SNOD", version 1) after `from`.
size_t symbol_node(const std::string& b, size_t from = 0) {
  const size_t at = b.find(std::string("SNOD\x01", 5), from);
  EXPECT_NE(at, std::string::npos);
  return at;
}

TEST(H5GroupCheck, FilesTheProjectWritesPassWithEveryNameChecked) {
  const sf::test::TempDir dir("groups");
  const fs::path p = write_groups(dir.path());
  // Root: big, a; big: its members; a, b, c: one each.
  EXPECT_EQ(names_in(p, sf::test::read_file(p)), uint64_t{kMembers} + 2 + 3);
  EXPECT_EQ(sf::h5::File::open(p).group("a").group("b").group("c").dataset("deep").read_all_strings()[0], "x");
}

TEST(H5GroupCheck, ANameOffsetPastTheHeapIsRefused) {
  const sf::test::TempDir dir("groups");
  std::string b = sf::test::read_file(write_groups(dir.path()));
  const size_t entry = symbol_node(b) + 8;  // entry 0: link name offset (8 bytes), ...
  const uint64_t far = 1u << 30;
  std::memcpy(&b[entry], &far, sizeof far);
  const std::string error = open_error(dir.path() / "damaged.h5", b);
  EXPECT_NE(error.find("damaged.h5: /"), std::string::npos) << error;
  EXPECT_NE(error.find("entry 0 names heap offset 1073741824, where no NUL-terminated name lies inside the local heap"),
            std::string::npos)
      << error;
}

TEST(H5GroupCheck, ANameWithoutItsNulIsRefused) {
  const sf::test::TempDir dir("groups");
  std::string b = sf::test::read_file(write_groups(dir.path()));
  // The root group's heap holds "a" and "big"; every byte from "big" to the end of the file loses its
  // NULs, so "big" ends nowhere inside the heap.
  const size_t name = b.find(std::string("big\0", 4));
  ASSERT_NE(name, std::string::npos);
  const sf::h5::Superblock sb = sf::h5::read_superblock(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  ASSERT_NE(sb.root_heap, sf::h5::kUndefinedAddress);
  const size_t heap = static_cast<size_t>(sb.root_heap);
  ASSERT_EQ(b.compare(heap, 4, "HEAP"), 0);
  uint64_t data_size = 0;
  uint64_t data_address = 0;
  std::memcpy(&data_size, &b[heap + 8], 8);
  std::memcpy(&data_address, &b[heap + 24], 8);
  ASSERT_GE(name, data_address);
  ASSERT_LT(name, data_address + data_size);
  for (size_t i = name; i < data_address + data_size; ++i)
    if (b[i] == '\0') b[i] = 'x';
  const std::string error = open_error(dir.path() / "damaged.h5", b);
  EXPECT_NE(error.find("where no NUL-terminated name lies inside the local heap's " + std::to_string(data_size) +
                       " bytes (a damaged file)"),
            std::string::npos)
      << error;
}

TEST(H5GroupCheck, ASymbolTableNodeWithMoreEntriesThanTheSuperblockAllowsIsRefused) {
  const sf::test::TempDir dir("groups");
  std::string b = sf::test::read_file(write_groups(dir.path()));
  const size_t node = symbol_node(b);
  b[node + 6] = 9;  // libhdf5's default group leaf node K is 4: at most 8 entries
  b[node + 7] = 0;
  const std::string error = open_error(dir.path() / "damaged.h5", b);
  EXPECT_NE(error.find("says it holds 9 entries, more than the 8 the superblock allows"), std::string::npos) << error;
}

TEST(H5GroupCheck, TheFuzzFindingIsRefusedBeforeLibhdf5ReadsIt) {
  const fs::path p = sf::test::source_dir() / "tests/fuzz/regressions/h5/local-heap-name-unterminated.h5";
  try {
    (void)names_in(p, sf::test::read_file(p));
    FAIL() << "accepted";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(
        std::string(e.what()).find("/examples: the group B-tree node at address 6648: key 1 names heap offset 96"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
