// io/h5_heap_check.hpp: the table of a file's global heap objects, read from its raw bytes; an HDF5
// file whose global heap holds an object libhdf5 1.10 cannot step over is refused by File::open with
// a FormatError naming the byte offsets (libhdf5 itself would loop forever); files written by the
// project, including strings that contain "GCOL", open as before.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/h5_heap_check.hpp"
#include "io/mapped_file.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

// A file with variable-length strings (they live in a global heap collection), one of them "GCOL…".
fs::path write_strings(const fs::path& dir) {
  const fs::path p = dir / "strings.h5";
  auto f = sf::h5::File::create(p);
  f.set_attr("note", "a variable-length string attribute");
  f.write_strings("answers", {"GCOL\x01", "an answer that says GCOL\x01 inside", "plain"}, {"string", {}, 64, 0});
  f.close();
  return p;
}

TEST(H5HeapCheck, FilesWithStringsThatSayGcolOpen) {
  const sf::test::TempDir dir("heap");
  const fs::path p = write_strings(dir.path());
  const auto raw = sf::io::MappedFile::open(p);
  const sf::h5::Superblock sb = sf::h5::read_superblock(raw->data(), raw->size());
  EXPECT_EQ(sb.size_of_offsets, 8);
  const sf::h5::GlobalHeaps heaps = sf::h5::read_global_heaps(p, raw->data(), raw->size(), sb);
  // One collection (the text "GCOL\x01" is not followed by a collection header) holding the four
  // strings, each an object of its own size.
  ASSERT_EQ(heaps.collections.size(), 1u);
  const uint64_t address = heaps.collections.begin()->first;
  std::vector<uint64_t> sizes;
  for (uint64_t i = 1; heaps.object_size(address, i); ++i) sizes.push_back(*heaps.object_size(address, i));
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<uint64_t>{5, 5, 32, 34}));
  EXPECT_FALSE(heaps.object_size(address, 0));
  EXPECT_FALSE(heaps.object_size(address, 5));
  EXPECT_FALSE(heaps.object_size(address + 8, 1));
  const auto f = sf::h5::File::open(p);
  EXPECT_EQ(f.dataset("answers").read_all_strings()[0], "GCOL\x01");
}

TEST(H5HeapCheck, AZeroSizeFreeSpaceObjectIsAFormatErrorNotAHang) {
  const sf::test::TempDir dir("heap");
  const fs::path good = write_strings(dir.path());
  std::string b = sf::test::read_file(good);
  // The collection libhdf5 wrote: "GCOL", version 1, 3 reserved bytes, its 8-byte size; then objects
  // (index 2, refs 2, reserved 4, size 8, data padded to 8), the last one free space (index 0).
  // The collection's header comes before the stored strings (one of which also reads "GCOL\x01\0\0\0").
  const size_t at = b.find(std::string("GCOL\x01\x00\x00\x00", 8));
  ASSERT_NE(at, std::string::npos);
  uint64_t length = 0;
  std::memcpy(&length, b.data() + at + 8, 8);
  size_t p = at + 16;
  while (true) {
    uint16_t index = 0;
    uint64_t size = 0;
    std::memcpy(&index, b.data() + p, 2);
    std::memcpy(&size, b.data() + p + 8, 8);
    if (index == 0) break;
    p += 16 + ((size + 7) & ~uint64_t{7});
    ASSERT_LT(p + 16, at + length);
  }
  // The free-space object's size set to 0, as in the input the h5 fuzz target found.
  std::memset(&b[p + 8], 0, 8);
  const fs::path bad = dir / "bad.h5";
  sf::test::write_file(bad, b);
  try {
    sf::h5::File::open(bad);
    FAIL() << "opened";
  } catch (const sf::FormatError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(bad.string()), std::string::npos) << m;
    EXPECT_NE(m.find("global heap collection at byte " + std::to_string(at)), std::string::npos) << m;
    EXPECT_NE(m.find("object 0 at byte " + std::to_string(p) + " has size 0"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  // The fuzz target's input: refused the same way.
  EXPECT_THROW(sf::h5::File::open(sf::test::source_dir() / "tests/fuzz/regressions/h5/global-heap-zero-size-object.h5"),
               sf::FormatError);
}

}  // namespace
