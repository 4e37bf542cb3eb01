// io/h5_vlen_check.hpp: a file whose variable-length string references point at an object its global
// heap does not hold, or give a length other than the object's, is refused by File::open with a
// FormatError naming the file, the attribute or dataset and the element (libhdf5 1.10 would read
// through an invalid pointer or past a buffer), whether the strings are stored raw or through the
// shuffle and deflate filters; undamaged files open and read as before.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

template <class T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}

const std::string kNote = "the attribute whose reference is damaged";
const std::vector<std::string> kAnswers = {"first answer", "the answer whose reference is damaged", "third"};

fs::path write_strings(const fs::path& dir, int gzip_level) {
  const fs::path p = dir / ("strings-" + std::to_string(gzip_level) + ".h5");
  auto f = sf::h5::File::create(p);
  f.set_attr("note", kNote);
  f.write_strings("answers", kAnswers, {"string", {}, 64, gzip_level});
  f.close();
  return p;
}

// The stored reference (length, collection address, object index) of the string `value` in `b`, the
// raw bytes that hold it; `file` has the heap that holds the string.
std::string reference_of(const std::string& file, const std::string& value) {
  const size_t collection = file.find(std::string("GCOL\x01\x00\x00\x00", 8));
  EXPECT_NE(collection, std::string::npos);
  const size_t data = file.find(value, collection);
  EXPECT_NE(data, std::string::npos);
  uint16_t index = 0;
  std::memcpy(&index, file.data() + data - 16, 2);  // the object's header: index, refs, reserved, size
  return le(static_cast<uint32_t>(value.size())) + le(static_cast<uint64_t>(collection)) +
         le(static_cast<uint32_t>(index));
}

// `bytes` with the reference of `value` changed by `damage` (given the 16 reference bytes).
std::string damaged(std::string bytes, const std::string& reference, void (*damage)(std::string&)) {
  const size_t at = bytes.find(reference);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(bytes.find(reference, at + 1), std::string::npos);
  if (at == std::string::npos) return bytes;
  std::string r = reference;
  damage(r);
  return bytes.replace(at, r.size(), r);
}

void bad_index(std::string& r) { r.replace(12, 4, le(uint32_t{65535})); }
void short_length(std::string& r) { r.replace(0, 4, le(uint32_t{5})); }

std::string open_error(const fs::path& p) {
  try {
    sf::h5::File::open(p);
  } catch (const sf::FormatError& e) {
    return e.what();
  }
  return "(opened)";
}

void expect_refused(const std::string& m, const fs::path& file, const std::string& what, const std::string& why) {
  EXPECT_NE(m.find(file.string() + ": " + what), std::string::npos) << m;
  EXPECT_NE(m.find(why), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(H5VlenCheck, UndamagedFilesOpenAndReadAsBefore) {
  const sf::test::TempDir dir("vlen");
  for (int gzip : {0, 4}) {
    const fs::path p = write_strings(dir.path(), gzip);
    const auto f = sf::h5::File::open(p);
    EXPECT_EQ(f.attr_string("note"), kNote);
    EXPECT_EQ(f.dataset("answers").read_all_strings(), kAnswers);
  }
}

TEST(H5VlenCheck, AReferenceToAnObjectTheHeapDoesNotHoldIsRefused) {
  const sf::test::TempDir dir("vlen");
  const std::string good = sf::test::read_file(write_strings(dir.path(), 0));
  const fs::path bad = dir / "bad.h5";
  sf::test::write_file(bad, damaged(good, reference_of(good, kNote), bad_index));
  expect_refused(open_error(bad), bad, "attribute 'note' of /, element 0", "refers to object 65535 of the global heap");
  sf::test::write_file(bad, damaged(good, reference_of(good, kAnswers[1]), bad_index));
  expect_refused(open_error(bad), bad, "dataset /answers, element 1", "which holds no such object");
  // The fuzz target's input (the root attribute 'tasks' refers to object 65535): refused the same way.
  const fs::path found = sf::test::source_dir() / "tests/fuzz/regressions/h5/global-heap-bad-object-index.h5";
  expect_refused(open_error(found), found, "attribute 'tasks' of /, element 0", "refers to object 65535");
}

TEST(H5VlenCheck, AReferenceShorterThanItsObjectIsRefused) {
  const sf::test::TempDir dir("vlen");
  const std::string good = sf::test::read_file(write_strings(dir.path(), 0));
  const fs::path bad = dir / "bad.h5";
  sf::test::write_file(bad, damaged(good, reference_of(good, kAnswers[1]), short_length));
  expect_refused(open_error(bad), bad, "dataset /answers, element 1",
                 "has length 5 but the object it refers to holds 37 bytes");
}

// The chunk of a gzip-compressed string dataset rewritten through its filters: inflated, unshuffled,
// the reference damaged, shuffled and deflated again (H5Dread_chunk / H5Dwrite_chunk).
TEST(H5VlenCheck, ADamagedReferenceBehindShuffleAndDeflateIsRefused) {
  const sf::test::TempDir dir("vlen");
  const fs::path p = write_strings(dir.path(), 4);
  const std::string reference = reference_of(sf::test::read_file(p), kAnswers[2]);
  {
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "answers", H5P_DEFAULT);
    const hsize_t origin[1] = {0};
    hsize_t stored = 0;
    ASSERT_GE(H5Dget_chunk_storage_size(d, origin, &stored), 0);
    std::string chunk(stored, '\0');
    uint32_t mask = 0;
    ASSERT_GE(H5Dread_chunk(d, H5P_DEFAULT, origin, &mask, chunk.data()), 0);
    std::string shuffled(64 * 16, '\0');  // 64 rows per chunk, 16-byte references
    uLongf n = shuffled.size();
    ASSERT_EQ(
        uncompress(reinterpret_cast<Bytef*>(shuffled.data()), &n, reinterpret_cast<const Bytef*>(chunk.data()), stored),
        Z_OK);
    // libhdf5 1.10 skips the (optional) shuffle filter for variable-length data, saying so in the
    // chunk's filter mask; if a version applies it, its element size is a reference's on disk.
    const bool shuffle = (mask & 1u) == 0;
    const size_t size = shuffle ? 16 : 1;
    const size_t count = shuffled.size() / size;
    std::string plain(shuffled.size(), '\0');
    for (size_t i = 0; i < count; ++i)
      for (size_t b = 0; b < size; ++b) plain[i * size + b] = shuffled[b * count + i];
    ASSERT_EQ(plain.substr(2 * 16, 16), reference);
    plain.replace(2 * 16 + 12, 4, le(uint32_t{65535}));
    for (size_t i = 0; i < count; ++i)
      for (size_t b = 0; b < size; ++b) shuffled[b * count + i] = plain[i * size + b];
    std::string packed(compressBound(shuffled.size()), '\0');
    uLongf m = packed.size();
    ASSERT_EQ(compress(reinterpret_cast<Bytef*>(packed.data()), &m, reinterpret_cast<const Bytef*>(shuffled.data()),
                       shuffled.size()),
              Z_OK);
    ASSERT_GE(H5Dwrite_chunk(d, H5P_DEFAULT, mask, origin, m, packed.data()), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  expect_refused(open_error(p), p, "dataset /answers, element 2", "refers to object 65535");
}

}  // namespace
