// safetensors reader/writer: round trips, and every HF validation rule on deliberately corrupted
// files (each must be a one-line FormatError naming the file and what is wrong, never a crash).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::io::read_safetensors;
using sf::io::SafetensorsFile;
using sf::io::write_safetensors;

// A raw file: 8-byte little-endian header length, the header text, then `data_bytes` bytes.
std::string raw_file(const std::string& header, size_t data_bytes, uint64_t header_len_override = 0) {
  const uint64_t n = header_len_override ? header_len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out.append(data_bytes, '\x01');
  return out;
}

// Expects a FormatError whose one-line message names the file and contains `what`.
void expect_format_error(const std::filesystem::path& file, const std::string& what) {
  try {
    SafetensorsFile::open(file);
    ADD_FAILURE() << file << ": expected a FormatError containing '" << what << "'";
  } catch (const sf::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  sf::test::TempDir dir{"safetensors"};
  std::filesystem::path write(const std::string& name, const std::string& bytes) {
    auto p = dir / name;
    sf::test::write_file(p, bytes);
    return p;
  }
};

TEST(Safetensors, RoundTripKeepsValuesDtypesOrderAndMetadata) {
  sf::test::TempDir dir("safetensors-rt");
  torch::Tensor a = torch::arange(12, torch::kFloat32).view({3, 4});
  torch::Tensor b = torch::randn({5}).to(torch::kBFloat16);
  torch::Tensor c = torch::tensor({7, -8, 9}, torch::kInt64);
  torch::Tensor h = torch::randn({2, 3}).to(torch::kFloat16).t();  // non-contiguous input
  write_safetensors(dir / "x.safetensors", {{"a", a}, {"b", b}, {"c", c}, {"h", h}}, {{"k", "v"}, {"format", "pt"}});
  std::map<std::string, std::string> meta;
  auto tensors = read_safetensors(dir / "x.safetensors", &meta);
  ASSERT_EQ(tensors.size(), 4u);
  EXPECT_EQ(tensors[0].first, "a");
  EXPECT_EQ(tensors[3].first, "h");
  EXPECT_TRUE(torch::equal(tensors[0].second, a));
  EXPECT_EQ(tensors[1].second.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(tensors[1].second, b));
  EXPECT_TRUE(torch::equal(tensors[2].second, c));
  EXPECT_TRUE(torch::equal(tensors[3].second, h));
  EXPECT_EQ(meta.at("k"), "v");
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, ViewsOutliveTheFileObjectAndWritesStayPrivate) {
  sf::test::TempDir dir("safetensors-view");
  write_safetensors(dir / "x.safetensors", {{"w", torch::ones({4})}});
  torch::Tensor t;
  {
    auto f = SafetensorsFile::open(dir / "x.safetensors");
    t = f.tensor("w");
  }
  t.mul_(3);  // copy-on-write: the file keeps its ones
  EXPECT_TRUE(torch::equal(t, torch::full({4}, 3.0)));
  auto again = read_safetensors(dir / "x.safetensors");
  EXPECT_TRUE(torch::equal(again[0].second, torch::ones({4})));
}

// Slices read with pread equal the same slice of the mapped view, for every dimension and dtype.
TEST(Safetensors, ReadSliceEqualsTheViewsSlice) {
  sf::test::TempDir dir("st-slice");
  const auto file = dir / "s.safetensors";
  const torch::Tensor m = torch::arange(6 * 7, torch::kFloat32).view({6, 7});
  const torch::Tensor cube = torch::arange(3 * 4 * 5, torch::kInt64).view({3, 4, 5});
  const torch::Tensor half = torch::randn({5, 9}).to(torch::kBFloat16);
  write_safetensors(file, {{"m", m}, {"cube", cube}, {"half", half}, {"vec", torch::arange(10, torch::kInt32)}});
  const SafetensorsFile f = SafetensorsFile::open(file);
  for (const char* name : {"m", "cube", "half", "vec"}) {
    const torch::Tensor whole = f.tensor(name);
    for (int64_t dim = 0; dim < whole.dim(); ++dim) {
      const int64_t n = whole.size(dim);
      for (auto [b, e] : std::vector<std::pair<int64_t, int64_t>>{{0, n}, {1, n - 1}, {n / 2, n}, {2, 2}}) {
        const torch::Tensor part = f.read_slice(name, dim, b, e);
        EXPECT_TRUE(part.is_contiguous());
        EXPECT_TRUE(torch::equal(part, whole.narrow(dim, b, e - b)))
            << name << " dim " << dim << " [" << b << "," << e << ")";
      }
    }
  }
  EXPECT_THROW(f.read_slice("m", 1, 3, 8), sf::ShapeError);
  EXPECT_THROW(f.read_slice("m", 2, 0, 1), sf::ShapeError);
  EXPECT_THROW(f.read_slice("m", 0, 4, 3), sf::ShapeError);
  EXPECT_THROW(f.read_slice("absent", 0, 0, 1), sf::FormatError);
}

TEST(Safetensors, EmptyFileOfNoTensorsIsValid) {
  sf::test::TempDir dir("safetensors-empty");
  write_safetensors(dir / "e.safetensors", {});
  EXPECT_TRUE(read_safetensors(dir / "e.safetensors").empty());
}

TEST(Safetensors, WriterRejectsDuplicateNames) {
  sf::test::TempDir dir("safetensors-dup");
  EXPECT_THROW(write_safetensors(dir / "d.safetensors", {{"a", torch::ones({1})}, {"a", torch::ones({1})}}),
               sf::ShapeError);
}

TEST_F(SafetensorsCorrupt, Truncated) {
  sf::test::TempDir src("safetensors-src");
  write_safetensors(src / "ok.safetensors", {{"a", torch::ones({4})}, {"b", torch::ones({4})}});
  std::string bytes = sf::test::read_file(src / "ok.safetensors");
  expect_format_error(write("t.safetensors", bytes.substr(0, bytes.size() - 3)), "'b' ends at byte offset");
}

TEST_F(SafetensorsCorrupt, OverlappingSpans) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  expect_format_error(write("o.safetensors", raw_file(h, 24)), "'b' overlaps");
}

TEST_F(SafetensorsCorrupt, Gap) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[20,36]}})";
  expect_format_error(write("g.safetensors", raw_file(h, 36)), "'b' leaves a gap");
}

TEST_F(SafetensorsCorrupt, NotStartingAtZero) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_format_error(write("z.safetensors", raw_file(h, 8)), "'a' leaves a gap");
}

TEST_F(SafetensorsCorrupt, HugeShapeOverflows) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}})";
  expect_format_error(write("h.safetensors", raw_file(h, 16)), "overflows");
  const std::string h2 = R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}})";
  expect_format_error(write("h2.safetensors", raw_file(h2, 16)), "overflows");
}

TEST_F(SafetensorsCorrupt, SpanDisagreesWithShape) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})";
  expect_format_error(write("s.safetensors", raw_file(h, 16)), "do not span 12 bytes");
}

TEST_F(SafetensorsCorrupt, BadDtype) {
  const std::string h = R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})";
  expect_format_error(write("d.safetensors", raw_file(h, 16)), "unknown dtype 'Q4'");
}

TEST_F(SafetensorsCorrupt, ValidButUnsupportedDtypeFailsOnlyWhenRead) {
  const std::string h = R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})";
  auto f = SafetensorsFile::open(write("f8.safetensors", raw_file(h, 4)));
  EXPECT_THROW(f.tensor("a"), sf::FormatError);
}

TEST_F(SafetensorsCorrupt, BadJson) {
  expect_format_error(write("j.safetensors", raw_file(R"({"a":{"dtype":)", 0)), "malformed");
  expect_format_error(write("j2.safetensors", raw_file("[1,2]", 0)), "not a JSON object");
  expect_format_error(write("j3.safetensors", raw_file(R"({"a":[1]})", 0)), "'a': entry is not an object");
  expect_format_error(write("j4.safetensors", raw_file(R"({"a":{"dtype":"F32","shape":[1]}})", 4)), "data_offsets");
  expect_format_error(
      write("j5.safetensors", raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
      "non-negative");
  expect_format_error(write("j6.safetensors", raw_file(R"({"__metadata__":{"k":1}})", 0)), "__metadata__ key 'k'");
}

TEST_F(SafetensorsCorrupt, HeaderLengthBeyondFile) {
  expect_format_error(write("l.safetensors", raw_file("{}", 0, 1000)), "runs past the end");
  expect_format_error(write("l2.safetensors", raw_file("{}", 0, 200ull * 1000 * 1000)), "exceeds 100 MB");
  expect_format_error(write("l3.safetensors", std::string("\x02\x00\x00", 3)), "shorter than the 8-byte header");
}

TEST_F(SafetensorsCorrupt, TrailingBytes) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  expect_format_error(write("tr.safetensors", raw_file(h, 20)), "4 trailing bytes");
}

TEST_F(SafetensorsCorrupt, MissingFileIsIoError) {
  EXPECT_THROW(SafetensorsFile::open(dir / "absent.safetensors"), sf::IoError);
}

}  // namespace
