// GGUF reader: metadata of every value type and dequantisation of every supported type against
// gguf-py (fixture tests/fixtures/gguf/quants.gguf, scripts/golden_gguf.py), and corrupted files,
// each a one-line FormatError naming the file and what is wrong, never a crash.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "core/error.hpp"
#include "io/gguf.hpp"
#include "testutil/gguf_writer.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::io::GgufFile;
using sf::io::GgufType;
using sf::test::GgufBuilder;
using sf::test::GgufTensorSpec;

std::filesystem::path quants_fixture() { return sf::test::fixtures_dir() / "gguf" / "quants.gguf"; }

TEST(Gguf, MetadataOfEveryTypeAsGgufPyWroteIt) {
  const GgufFile f = GgufFile::open(quants_fixture());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "test");
  EXPECT_EQ(f.find("test.u8")->type, GgufType::kUint8);
  EXPECT_EQ(f.get_uint("test.u8"), 200u);
  EXPECT_EQ(f.find("test.i8")->int_value, -100);
  EXPECT_EQ(f.get_uint("test.u16"), 60000u);
  EXPECT_EQ(f.find("test.i16")->int_value, -30000);
  EXPECT_EQ(f.get_uint("test.u32"), 4000000000u);
  EXPECT_EQ(f.find("test.i32")->int_value, -2000000000);
  EXPECT_EQ(f.get_float("test.f32"), 0.25);
  EXPECT_TRUE(f.get_bool("test.bool"));
  EXPECT_EQ(f.get_string("test.string"), "h\xC3\xA9llo \xE2\x9C\x93");
  EXPECT_EQ(f.get_uint("test.u64"), 18000000000000000000ull);
  EXPECT_EQ(f.find("test.i64")->int_value, -9000000000000000000ll);
  EXPECT_EQ(f.get_float("test.f64"), -1.5e300);
  EXPECT_EQ(f.get_strings("test.strings"), (std::vector<std::string>{"a", "", "\xC3\x9F"}));
  EXPECT_EQ(f.get_ints("test.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_floats("test.floats"), (std::vector<double>{0.5, -2.0}));
  const auto* nested = f.find("test.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->element_type, GgufType::kArray);
  ASSERT_EQ(nested->items.size(), 2u);
  EXPECT_EQ(nested->items[0].items.size(), 2u);
  EXPECT_EQ(nested->items[1].element_type, GgufType::kInt32);
  EXPECT_EQ(nested->items[1].items.at(0).int_value, 3);
  // Typed reads name the file and key when the type differs or the key is absent.
  try {
    f.get_string("test.u32");
    ADD_FAILURE() << "expected a FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'test.u32': expected a string, got uint32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_uint("test.i8"), sf::FormatError);  // negative
  EXPECT_THROW(f.get_bool("no.such.key"), sf::FormatError);
}

TEST(Gguf, DequantizesEveryTypeAsGgufPy) {
  const GgufFile f = GgufFile::open(quants_fixture());
  int checked = 0;
  for (const char* type : {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"}) {
    SCOPED_TRACE(type);
    const torch::Tensor got = f.tensor(type).to(torch::kFloat32);
    const torch::Tensor want = f.tensor(std::string(type) + ".expected");
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_EQ(f.find_tensor(type)->type.name, std::string(type));
    // gguf-py computes in float32 numpy; allow one rounding of the products.
    const double err = (got - want).abs().max().item<double>();
    const double scale = want.abs().max().item<double>();
    EXPECT_LE(err, 1e-6 * scale) << "max |diff| " << err;
    std::ostringstream rel;
    rel << err / scale;
    RecordProperty(std::string("max_rel_diff_") + type, rel.str());
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(Gguf, UnsupportedTypeIsAnErrorNamingIt) {
  const GgufFile f = GgufFile::open(quants_fixture());
  try {
    f.tensor("IQ2_XXS");
    ADD_FAILURE() << "expected a FormatError";
  } catch (const sf::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("quants.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'IQ2_XXS'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("GGML type IQ2_XXS is not supported"), std::string::npos) << msg;
  }
}

// A small valid file: two tensors and a few keys.
GgufBuilder valid() {
  GgufBuilder b;
  b.str("general.architecture", "llama").u32("llama.block_count", 2).strings("tokenizer.ggml.tokens", {"a", "b"});
  b.f32_tensor("a", {1, 2, 3, 4, 5, 6}, 2, 3);
  b.f32_tensor("b", {7, 8}, 2);
  return b;
}

class GgufCorrupt : public ::testing::Test {
 protected:
  sf::test::TempDir dir{"gguf-corrupt"};
  int n = 0;
  // Writes `bytes` and expects a one-line FormatError naming the file and containing `what`.
  void expect_error(const std::string& bytes, const std::string& what) {
    const auto file = dir / ("f" + std::to_string(n++) + ".gguf");
    sf::test::write_file(file, bytes);
    try {
      GgufFile::open(file);
      ADD_FAILURE() << "expected a FormatError containing '" << what << "'";
    } catch (const sf::FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
};

TEST_F(GgufCorrupt, ValidFileReads) {
  const auto file = dir / "ok.gguf";
  sf::test::write_file(file, valid().build());
  const GgufFile f = GgufFile::open(file);
  EXPECT_EQ(f.tensors().size(), 2u);
  EXPECT_TRUE(torch::equal(f.tensor("a"), torch::tensor({1, 2, 3, 4, 5, 6}, torch::kFloat32).view({2, 3})));
  EXPECT_EQ(f.find_tensor("b")->offset, 32u);  // 24 bytes padded to the alignment
}

TEST_F(GgufCorrupt, EveryTruncationIsAFormatError) {
  const std::string full = valid().build();
  for (size_t len = 0; len < full.size(); ++len) {
    const auto file = dir / "t.gguf";
    sf::test::write_file(file, full.substr(0, len));
    try {
      GgufFile::open(file);
      // Only a cut inside the last tensor's trailing padding leaves a readable file.
      EXPECT_GE(len, full.size() - 24) << "truncated to " << len << " bytes still opened";
    } catch (const sf::FormatError& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("t.gguf"), std::string::npos) << e.what();
    }
  }
}

TEST_F(GgufCorrupt, MagicAndVersion) {
  GgufBuilder b = valid();
  b.magic = 0x46554746;
  expect_error(b.build(), "not a GGUF file");
  b = valid();
  b.version = 1;
  expect_error(b.build(), "GGUF version 1 is not supported");
  b.version = 4;
  expect_error(b.build(), "GGUF version 4 is not supported");
  b.version = 0x03000000;
  expect_error(b.build(), "a big-endian file");
  expect_error("GGU", "too short for the GGUF magic");
}

TEST_F(GgufCorrupt, CountsAndLengths) {
  GgufBuilder b = valid();
  b.kv_count = uint64_t{1} << 60;
  expect_error(b.build(), "metadata count 1152921504606846976 exceeds the file");
  b = valid();
  b.tensor_count = 1000;
  expect_error(b.build(), "tensor count 1000 exceeds the file");
  b = valid();
  b.kv("x.s", 8, sf::test::gguf_u64(~uint64_t{0}));
  expect_error(b.build(), "metadata 'x.s': string length 18446744073709551615 runs past the end");
  b = valid();
  b.kv("x.arr", 9, sf::test::gguf_u32(4) + sf::test::gguf_u64(uint64_t{1} << 62));
  expect_error(b.build(), "metadata 'x.arr': array length 4611686018427387904 runs past the end of the file");
}

TEST_F(GgufCorrupt, MetadataTypesAndKeys) {
  GgufBuilder b = valid();
  b.kv("x.bad", 13, sf::test::gguf_u32(0));
  expect_error(b.build(), "metadata 'x.bad': unknown value type 13");
  b = valid();
  b.kv("x.arr", 9, sf::test::gguf_u32(99) + sf::test::gguf_u64(0));
  expect_error(b.build(), "metadata 'x.arr': unknown array element type 99");
  b = valid();
  b.kv("x.b", 7, std::string(1, '\x02'));
  expect_error(b.build(), "metadata 'x.b': bool value 2 is not 0 or 1");
  b = valid();
  b.u32("llama.block_count", 3);
  expect_error(b.build(), "duplicate metadata key 'llama.block_count'");
  b = valid();
  b.u32("", 3);
  expect_error(b.build(), "metadata key #3 is empty");
  b = valid();
  b.u32("general.alignment", 48);
  expect_error(b.build(), "'general.alignment' must be a uint32 power of two, got 48");
  // Nesting is bounded.
  std::string nested = sf::test::gguf_u32(4) + sf::test::gguf_u64(0);
  for (int i = 0; i < 10; ++i) nested = sf::test::gguf_array(9, {nested});
  b = valid();
  b.kv("x.deep", 9, nested);
  expect_error(b.build(), "arrays nested deeper than 8");
}

TEST_F(GgufCorrupt, TensorInfos) {
  GgufBuilder b = valid();
  b.f32_tensor("a", {1}, 1);
  expect_error(b.build(), "duplicate tensor 'a'");
  b = valid();
  b.tensor({"c", 0, {1, 1, 1, 1, 1}, std::string(4, '\0'), std::nullopt});
  expect_error(b.build(), "tensor 'c': 5 dims (at most 4)");
  b = valid();
  b.tensor({"c", 0, {uint64_t{1} << 32, uint64_t{1} << 32}, "", std::nullopt});
  expect_error(b.build(), "tensor 'c': dims overflow the element count");
  b = valid();
  b.tensor({"c", 0, {~uint64_t{0}}, "", std::nullopt});
  expect_error(b.build(), "tensor 'c': dims overflow the element count");
  b = valid();
  b.tensor({"c", 31, {4}, std::string(16, '\0'), std::nullopt});
  expect_error(b.build(), "tensor 'c': unknown GGML type 31");
  b = valid();
  b.tensor({"c", 8, {16, 2}, std::string(68, '\0'), std::nullopt});  // Q8_0 rows of 16
  expect_error(b.build(), "tensor 'c': row of 16 elements is not a whole number of Q8_0 blocks of 32");
  b = valid();
  b.tensor({"", 0, {1}, std::string(4, '\0'), std::nullopt});
  expect_error(b.build(), "tensor #2 has an empty name");
}

TEST_F(GgufCorrupt, TensorOffsets) {
  GgufBuilder b;
  b.f32_tensor("a", {1, 2, 3, 4, 5, 6}, 2, 3);
  b.tensor({"b", 0, {2}, std::string(8, '\0'), 33});
  expect_error(b.build(), "tensor 'b': data offset 33 is not a multiple of the alignment 32");
  b = GgufBuilder();
  b.f32_tensor("a", {1, 2, 3, 4, 5, 6}, 2, 3);
  b.tensor({"b", 0, {2}, std::string(8, '\0'), 64});
  expect_error(b.build(), "tensor 'b': data offset 64, expected 32 (the aligned end of tensor 'a')");
  b = GgufBuilder();
  b.f32_tensor("a", {1, 2, 3, 4, 5, 6}, 2, 3);
  b.tensor({"b", 0, {2}, std::string(8, '\0'), 0});
  expect_error(b.build(), "tensor 'b': data offset 0, expected 32");
  b = GgufBuilder();
  b.tensor({"a", 0, {1000}, std::string(16, '\0'), std::nullopt});  // claims 4000 bytes
  expect_error(b.build(), "tensor 'a': 4000 bytes at byte offset 64 run past the end of the");
  b = GgufBuilder();
  b.tensor({"a", 0, {uint64_t{1} << 62}, "", std::nullopt});
  expect_error(b.build(), "tensor 'a': byte size overflows");
}

TEST(Gguf, IsGgufFileByExtension) {
  EXPECT_TRUE(sf::io::is_gguf_file("/x/model.Q4_1.gguf"));
  EXPECT_TRUE(sf::io::is_gguf_file("M.GGUF"));
  EXPECT_FALSE(sf::io::is_gguf_file("/x/model"));
  EXPECT_FALSE(sf::io::is_gguf_file("/x/model.safetensors"));
}

}  // namespace
