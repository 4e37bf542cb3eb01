// The logit dataset written from synthetic examples: shards, merge, reader, schema validation of
// tampered files, and h5dump compatibility. No model is needed.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.hpp"
#include "extract/logit_dataset.hpp"
#include "extract/shard_writer.hpp"
#include "io/h5.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::extract::ExtractedExample;
namespace h5 = sf::h5;

constexpr int64_t kK = 5, kH = 6;

ExtractedExample synthetic(int64_t item, int64_t n) {
  torch::manual_seed(static_cast<uint64_t>(item));
  ExtractedExample ex;
  ex.item = item;
  ex.example_id = item % 7;
  ex.task = item < 4 ? "advbench" : "gsm8k";
  ex.prompt = "prompt " + std::to_string(item) + " ✓";
  ex.response = "answer " + std::to_string(item);
  ex.finish_reason = item % 2 ? "eos" : "length";
  ex.aligned_prompt_ids = {1, 2, static_cast<int32_t>(item)};
  ex.base_prompt_ids = {7, static_cast<int32_t>(item)};
  for (int64_t j = 0; j < n; ++j) ex.response_ids.push_back(static_cast<int32_t>(100 + item * 10 + j));
  ex.aligned_topk_logits = std::get<0>(torch::randn({n, kK}).sort(-1, true));
  ex.aligned_topk_ids = torch::randint(0, 1000, {n, kK}, torch::kInt64);
  ex.base_topk_logits = std::get<0>(torch::randn({n, kK}).sort(-1, true));
  ex.base_topk_ids = torch::randint(0, 1000, {n, kK}, torch::kInt64);
  ex.base_hidden = torch::randn({n, kH});
  ex.is_eos = torch::zeros({n}, torch::kBool);
  if (item % 2 && n > 0) ex.is_eos[n - 1] = true;
  return ex;
}

nlohmann::json attrs() {
  return {{"tool_version", "test"},
          {"git_sha", "none"},
          {"job_config", "run_dir: x\n"},
          {"job_fingerprint", "fp"},
          {"models", nlohmann::json{{"base", {{"path", "b"}}}, {"aligned", {{"path", "a"}}}}},
          {"tasks", nlohmann::json::array({{{"name", "advbench"}}})},
          {"tokenizer_sha256", "00"},
          {"vocab_size", 1000},
          {"seed", 1},
          {"max_new_tokens", 4},
          {"num_items", 6},
          {"chunk_examples", 2}};
}

// Three shards of two examples (lengths 3,1 | 4,2 | 1,3) merged into logits.h5.
std::filesystem::path write_study(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir / "shards");
  const std::vector<int64_t> lengths = {3, 1, 4, 2, 1, 3};
  sf::extract::ShardLayout layout{kK, kH, "float16", 2, 4};
  std::vector<std::filesystem::path> shards;
  for (int64_t c = 0; c < 3; ++c) {
    shards.push_back(dir / "shards" / ("chunk-00000" + std::to_string(c) + ".h5"));
    nlohmann::json a = attrs();
    a["chunk_index"] = c;
    sf::extract::ShardWriter w(shards.back(), a, layout);
    w.append({synthetic(2 * c, lengths[static_cast<size_t>(2 * c)])});
    w.append({synthetic(2 * c + 1, lengths[static_cast<size_t>(2 * c + 1)])});
    EXPECT_TRUE(std::filesystem::exists(shards.back().string() + ".part"));
    w.finish();
  }
  sf::extract::merge_shards(shards, dir / "logits.h5");
  return dir / "logits.h5";
}

void expect_same(const ExtractedExample& a, const ExtractedExample& b) {
  EXPECT_EQ(a.item, b.item);
  EXPECT_EQ(a.example_id, b.example_id);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.response, b.response);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.aligned_prompt_ids, b.aligned_prompt_ids);
  EXPECT_EQ(a.base_prompt_ids, b.base_prompt_ids);
  EXPECT_EQ(a.response_ids, b.response_ids);
  EXPECT_TRUE(a.aligned_topk_logits.equal(b.aligned_topk_logits));
  EXPECT_TRUE(a.aligned_topk_ids.equal(b.aligned_topk_ids));
  EXPECT_TRUE(a.base_topk_logits.equal(b.base_topk_logits));
  EXPECT_TRUE(a.base_topk_ids.equal(b.base_topk_ids));
  EXPECT_TRUE(a.is_eos.equal(b.is_eos));
  // fp16 storage: relative error below 2^-10.
  EXPECT_TRUE(a.base_hidden.allclose(b.base_hidden, 1e-3, 1e-3));
}

class LogitDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("SUPERFICIAL_SCHEMA_DIR", (sf::test::source_dir() / "results-schema").c_str(), 1); }
};

TEST_F(LogitDatasetTest, MergedFileReadsBackEveryExample) {
  sf::test::TempDir dir("logits-merge");
  const auto file = write_study(dir.path());
  EXPECT_FALSE(std::filesystem::exists(file.string() + ".part"));
  const auto d = sf::extract::LogitDataset::open(file);
  EXPECT_EQ(d.num_examples(), 6);
  EXPECT_EQ(d.num_tokens(), 14);
  EXPECT_EQ(d.top_k(), kK);
  EXPECT_EQ(d.hidden_size(), kH);
  EXPECT_EQ(d.attributes().at("kind"), "merged");
  EXPECT_EQ(d.attributes().at("num_shards"), 3);
  EXPECT_FALSE(d.attributes().contains("chunk_index"));
  const std::vector<int64_t> lengths = {3, 1, 4, 2, 1, 3};
  for (int64_t r = 0; r < 6; ++r) {
    expect_same(d.example(r), synthetic(r, lengths[static_cast<size_t>(r)]));
    EXPECT_EQ(d.example_tokens(r), lengths[static_cast<size_t>(r)]);
  }
  // Token rows across the boundary of two shards (rows 3..5: item 1, then item 2).
  const auto rows = d.tokens(3, 3);
  EXPECT_TRUE(rows.item.equal(torch::tensor({1, 2, 2}, torch::kInt64)));
  EXPECT_TRUE(rows.position.equal(torch::tensor({0, 0, 1}, torch::kInt64)));
  EXPECT_THROW(d.example(6), sf::ShapeError);
  // A shard reads on its own, too.
  EXPECT_EQ(sf::extract::LogitDataset::open(dir / "shards/chunk-000001.h5").num_tokens(), 6);
  EXPECT_TRUE(h5::validate_file(file).empty());
  EXPECT_TRUE(h5::validate_file(dir / "shards/chunk-000002.h5").empty());
}

TEST_F(LogitDatasetTest, OpensInH5dump) {
  sf::test::TempDir dir("logits-h5dump");
  const auto file = write_study(dir.path());
  const auto r = sf::test::run_command("h5dump -H " + file.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("base_hidden"), std::string::npos);
  // Data through the virtual dataset, read from another working folder.
  const auto d = sf::test::run_command("cd / && h5dump -d /tokens/item " + file.string());
  EXPECT_EQ(d.exit_code, 0) << d.output;
  EXPECT_NE(d.output.find("0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 4, 5, 5, 5"), std::string::npos) << d.output;
}

TEST_F(LogitDatasetTest, ValidationCatchesTamperedFiles) {
  sf::test::TempDir dir("logits-tamper");
  const auto file = write_study(dir.path());
  {  // a missing dataset in a shard
    h5::File f = h5::File::open(dir / "shards/chunk-000000.h5", true);
    H5Ldelete(f.id(), "examples/response", H5P_DEFAULT);
  }
  auto p = h5::validate_file(dir / "shards/chunk-000000.h5");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("examples/response: dataset is missing"), std::string::npos) << p[0];
  EXPECT_THROW(sf::extract::LogitDataset::open(dir / "shards/chunk-000000.h5"), sf::FormatError);

  {  // a wrong dtype
    h5::File f = h5::File::open(dir / "shards/chunk-000001.h5", true);
    const auto ids = f.dataset("tokens/token_id").read_all();
    H5Ldelete(f.id(), "tokens/token_id", H5P_DEFAULT);
    f.group("tokens").write_dataset("token_id", ids.to(torch::kInt64), {"int64", {}, 16, 0});
  }
  p = h5::validate_file(dir / "shards/chunk-000001.h5");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("tokens/token_id: dtype is int64, expected int32"), std::string::npos) << p[0];

  {  // another schema version
    h5::File f = h5::File::open(file, true);
    f.set_attr("schema_version", int64_t{2});
  }
  p = h5::validate_file(file);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("schema logits version 2 is unknown to this build"), std::string::npos) << p[0];
  try {
    sf::extract::LogitDataset::open(file);
    FAIL() << "expected FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("re-run `superficial extract`"), std::string::npos) << e.what();
  }
}

TEST_F(LogitDatasetTest, UnfinishedShardsLeaveNoFile) {
  sf::test::TempDir dir("logits-unfinished");
  const auto path = dir / "chunk-000000.h5";
  {
    sf::extract::ShardWriter w(path, attrs(), {kK, kH, "bfloat16", 2, 0});
    w.append({synthetic(0, 2)});
    ExtractedExample wrong_k = synthetic(1, 2);
    wrong_k.base_topk_ids = torch::zeros({2, kK + 1}, torch::kInt64);
    EXPECT_THROW(w.append({wrong_k}), sf::ShapeError);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".part"));
  EXPECT_THROW(sf::extract::ShardWriter(dir / "no/such/folder/x.h5", attrs(), {kK, kH, "float16", 2, 0}), sf::IoError);
}

}  // namespace
