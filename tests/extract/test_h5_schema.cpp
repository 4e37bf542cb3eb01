#include <gtest/gtest.h>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace h5 = sf::h5;

nlohmann::json small_schema() {
  return nlohmann::json::parse(R"({
    "schema": "demo", "version": 2,
    "dimensions": {"N": {}, "K": {"attribute": "k"}},
    "attributes": {"schema": {"type": "string", "value": "demo"}, "k": {"type": "int64"},
                   "meta": {"type": "json"}, "note": {"type": "string", "optional": true}},
    "groups": {"g": {}},
    "datasets": {"g/x": {"dtype": "float32", "shape": ["N", "K"]},
                 "g/h": {"dtype": ["float16", "bfloat16"], "shape": ["N", 3]},
                 "g/s": {"dtype": "string", "shape": ["N"]}}
  })");
}

void write_demo(const std::filesystem::path& p, const std::string& hidden_dtype, int64_t k_attr) {
  h5::File f = h5::File::create(p);
  h5::write_attrs(f, {{"schema", "demo"}, {"k", k_attr}, {"meta", nlohmann::json{{"a", 1}}}});
  const h5::Group g = f.create_group("g");
  const h5::Dataset x = g.create_dataset("x", {"float32", {4}, 2, 4});
  x.append(torch::arange(8, torch::kFloat32).reshape({2, 4}));
  x.append(torch::arange(4, torch::kFloat32).reshape({1, 4}));
  g.write_dataset("h", torch::ones({3, 3}).to(hidden_dtype == "float16" ? torch::kHalf : torch::kBFloat16),
                  {hidden_dtype, {}, 2, 0});
  g.write_strings("s", {"a", "ü", ""}, {"string", {}, 2, 4});
}

TEST(H5, RoundTripTypesAndAttributes) {
  sf::test::TempDir dir("h5-roundtrip");
  write_demo(dir / "a.h5", "bfloat16", 4);
  const h5::File f = h5::File::open(dir / "a.h5");
  const h5::Dataset x = f.dataset("g/x");
  EXPECT_EQ(x.shape(), (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(x.read(1, 2).equal(
      torch::cat({torch::arange(4, 8, torch::kFloat32), torch::arange(4, torch::kFloat32)}).reshape({2, 4})));
  EXPECT_EQ(x.chunk_shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(x.filters().size(), 2u);  // shuffle + deflate
  EXPECT_EQ(f.dataset("g/h").dtype(), "bfloat16");
  EXPECT_TRUE(f.dataset("g/h").read_all().to(torch::kFloat32).equal(torch::ones({3, 3})));
  EXPECT_EQ(f.dataset("g/s").read_all_strings(), (std::vector<std::string>{"a", "ü", ""}));
  const auto attrs = h5::read_attrs(f);
  EXPECT_EQ(attrs.at("k"), 4);
  EXPECT_EQ(nlohmann::json::parse(attrs.at("meta").get<std::string>()).at("a"), 1);
  EXPECT_THROW(f.attr_int("schema"), sf::FormatError);
  EXPECT_THROW(f.dataset("g/missing"), sf::FormatError);
  EXPECT_THROW(x.read(2, 5), sf::ShapeError);
  EXPECT_THROW(x.append(torch::zeros({1, 4}, torch::kFloat64)), sf::ShapeError);
  EXPECT_THROW(h5::File::open(dir / "none.h5"), sf::IoError);
}

TEST(H5, SchemaCheckerFindsEachProblem) {
  sf::test::TempDir dir("h5-schema");
  write_demo(dir / "ok.h5", "float16", 4);
  EXPECT_TRUE(h5::check_schema(h5::File::open(dir / "ok.h5"), small_schema()).empty());

  write_demo(dir / "badk.h5", "float16", 5);  // K bound by the attribute disagrees with g/x
  auto p = h5::check_schema(h5::File::open(dir / "badk.h5"), small_schema());
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("g/x: dimension 1 (K) is 4, but K = 5"), std::string::npos) << p[0];

  {
    h5::File f = h5::File::open(dir / "ok.h5", true);
    H5Ldelete(f.id(), "g/s", H5P_DEFAULT);
    f.set_attr("meta", "{not json");
  }
  p = h5::check_schema(h5::File::open(dir / "ok.h5"), small_schema());
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NE(p[0].find("'meta' is not valid JSON"), std::string::npos) << p[0];
  EXPECT_NE(p[1].find("g/s: dataset is missing"), std::string::npos) << p[1];
}

TEST(H5, VirtualDatasetConcatenatesSources) {
  sf::test::TempDir dir("h5-virtual");
  std::filesystem::create_directories(dir / "parts");
  for (int i = 0; i < 2; ++i) {
    h5::File f = h5::File::create(dir / ("parts/p" + std::to_string(i) + ".h5"));
    f.write_dataset("v", torch::full({2 + i, 2}, static_cast<float>(i)), {"float32", {}, 4, 4});
  }
  {
    h5::File f = h5::File::create(dir / "all.h5");
    f.create_virtual("v", "float32", {2}, {{"parts/p0.h5", "v", 2}, {"parts/p1.h5", "v", 3}});
  }
  const nlohmann::json schema = {{"datasets", {{"v", {{"dtype", "float32"}, {"shape", {5, 2}}}}}}};
  const h5::File f = h5::File::open(dir / "all.h5");
  EXPECT_TRUE(f.dataset("v").is_virtual());
  EXPECT_TRUE(h5::check_schema(f, schema).empty());
  EXPECT_FLOAT_EQ(f.dataset("v").read(4, 1)[0][1].item<float>(), 1.0f);
  std::filesystem::remove(dir / "parts/p1.h5");
  const auto p = h5::check_schema(h5::File::open(dir / "all.h5"), schema);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("source parts/p1.h5 unusable"), std::string::npos) << p[0];
}

}  // namespace
