// Saving/loading heads, and folding a hidden head into a model (export-merged).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "heads/base_model.hpp"
#include "heads/export.hpp"
#include "heads/head.hpp"
#include "heads/synthetic.hpp"
#include "io/safetensors.hpp"
#include "model/causal_lm.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::heads::Head;
using sf::heads::HeadSpec;

void randomise(const Head& head, uint64_t seed) {
  torch::manual_seed(seed);
  for (const auto& [name, t] : head.named_parameters()) t.copy_(0.1 * torch::randn(t.sizes()));
}

TEST(HeadIo, SaveLoadRoundTripWithMetadata) {
  sf::test::TempDir dir("heads_io");
  for (const HeadSpec& spec : {HeadSpec{"h", "hidden", 0, 0}, HeadSpec{"lr", "hidden", 3, 0},
                               HeadSpec{"bb", "bb", 4, 10}, HeadSpec{"b", "bias", 0, 0}}) {
    const Head head = Head::init(spec, 40, 8, 1);
    randomise(head, 2);
    const auto file = dir / (spec.name + ".safetensors");
    head.save(file, {{"base_model_hash", "abc"}, {"tokenizer_hash", "def"}, {"config", "{\"lr\": 0.1}"}});
    const Head back = Head::load(file);
    EXPECT_EQ(back.spec().name, spec.name);
    EXPECT_EQ(back.variant(), spec.variant);
    EXPECT_EQ(back.spec().rank, spec.rank);
    EXPECT_EQ(back.spec().k, spec.k);
    EXPECT_EQ(back.vocab_size(), 40);
    EXPECT_EQ(back.hidden_size(), head.hidden_size());
    EXPECT_EQ(back.metadata().at("base_model_hash"), "abc");
    EXPECT_EQ(back.metadata().at("tokenizer_hash"), "def");
    EXPECT_EQ(back.metadata().at("config"), "{\"lr\": 0.1}");
    EXPECT_EQ(back.metadata().at("format"), "superficial-head-v1");
    ASSERT_EQ(back.named_parameters().size(), head.named_parameters().size());
    for (size_t i = 0; i < head.named_parameters().size(); ++i) {
      EXPECT_TRUE(back.named_parameters()[i].second.equal(head.named_parameters()[i].second)) << spec.name;
    }
    torch::manual_seed(3);
    const auto logits = torch::randn({2, 40});
    const auto hidden = torch::randn({2, 8});
    EXPECT_TRUE(back.apply(logits, hidden).equal(head.apply(logits, hidden)));
  }
}

TEST(HeadIo, RejectsFilesThatAreNotHeads) {
  sf::test::TempDir dir("heads_io_bad");
  sf::io::write_safetensors(dir / "plain.safetensors", {{"bias", torch::zeros({4})}});
  EXPECT_THROW(Head::load(dir / "plain.safetensors"), sf::FormatError);
  // Right metadata, wrong shape.
  const std::map<std::string, std::string> meta = {{"format", "superficial-head-v1"},
                                                   {"name", "b"},
                                                   {"variant", "bias"},
                                                   {"rank", "0"},
                                                   {"k", "0"},
                                                   {"vocab_size", "5"},
                                                   {"hidden_size", "0"}};
  sf::io::write_safetensors(dir / "shape.safetensors", {{"bias", torch::zeros({4})}}, meta);
  EXPECT_THROW(Head::load(dir / "shape.safetensors"), sf::FormatError);
  auto bad_rank = meta;
  bad_rank["rank"] = "x";
  sf::io::write_safetensors(dir / "rank.safetensors", {{"bias", torch::zeros({5})}}, bad_rank);
  EXPECT_THROW(Head::load(dir / "rank.safetensors"), sf::FormatError);
  sf::io::write_safetensors(dir / "extra.safetensors", {{"bias", torch::zeros({5})}, {"more", torch::zeros({1})}},
                            meta);
  EXPECT_THROW(Head::load(dir / "extra.safetensors"), sf::FormatError);
  sf::io::write_safetensors(dir / "good.safetensors", {{"bias", torch::zeros({5})}}, meta);
  EXPECT_NO_THROW(Head::load(dir / "good.safetensors"));
}

TEST(BaseModel, FingerprintsTellModelsApart) {
  sf::test::TempDir dir("heads_fingerprint");
  sf::test::make_tiny_model(dir / "a", 32, 16, false, 1);
  sf::test::make_tiny_model(dir / "b", 32, 16, false, 2);
  EXPECT_EQ(sf::heads::model_fingerprint(dir / "a"), sf::heads::model_fingerprint(dir / "a"));
  EXPECT_NE(sf::heads::model_fingerprint(dir / "a"), sf::heads::model_fingerprint(dir / "b"));
  EXPECT_EQ(sf::heads::tokenizer_fingerprint(dir / "a"), "none");
  const auto llama = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-hf";
  const auto chat = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-chat-hf";
  EXPECT_EQ(sf::heads::tokenizer_fingerprint(llama), sf::heads::tokenizer_fingerprint(chat));
  EXPECT_EQ(sf::heads::tokenizer_fingerprint(llama).size(), 64u);
}

// Logits of a saved model on a fixed sequence, with its final hidden states.
sf::model::ForwardOutput run(const std::filesystem::path& dir) {
  torch::NoGradGuard no_grad;
  const auto m = sf::model::CausalLM::load(dir);
  const auto ids = torch::tensor({{1, 5, 9, 3, 7, 2}}, torch::kLong);
  return m.forward(ids, torch::ones_like(ids));
}

void check_merge(bool tied, int64_t rank) {
  sf::test::TempDir dir("heads_merge");
  sf::test::make_tiny_model(dir / "base", 32, 16, tied, 4);
  const Head head = Head::init({"h", "hidden", rank, 0}, 32, 16, 1);
  randomise(head, 5);
  head.save(dir / "h.safetensors", {{"base_model_hash", sf::heads::model_fingerprint(dir / "base")}});
  sf::heads::export_merged(dir / "base", dir / "h.safetensors", dir / "merged");

  const auto base = run(dir / "base");
  const auto merged = run(dir / "merged");
  const auto expected = Head::load(dir / "h.safetensors").apply(base.logits[0], base.hidden[0]);  // [T,V]
  EXPECT_TRUE(torch::allclose(merged.logits[0], expected, 1e-4, 1e-4)) << (merged.logits[0] - expected).abs().max();
  EXPECT_FALSE(torch::allclose(merged.logits[0], base.logits[0], 1e-3, 1e-3));  // the head did change something
  std::ifstream in(dir / "merged" / "config.json");
  EXPECT_FALSE(nlohmann::json::parse(in).at("tie_word_embeddings").get<bool>());
  EXPECT_EQ(sf::io::SafetensorsFile::open(dir / "merged" / "model.safetensors").info("lm_head.weight").dtype, "F32");
}

TEST(ExportMerged, UntiedBaseLogitsEqualBasePlusHead) { check_merge(false, 0); }
TEST(ExportMerged, TiedBaseIsUntied) { check_merge(true, 0); }
TEST(ExportMerged, LowRankHeadIsMaterialised) { check_merge(false, 2); }

TEST(ExportMerged, RefusesOtherVariantsAndOtherBases) {
  sf::test::TempDir dir("heads_merge_bad");
  sf::test::make_tiny_model(dir / "base", 32, 16, false, 4);
  sf::test::make_tiny_model(dir / "other", 32, 16, false, 5);
  const std::string hash = sf::heads::model_fingerprint(dir / "base");
  Head::init({"b", "bias", 0, 0}, 32, 0, 1).save(dir / "b.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "base", dir / "b.safetensors", dir / "m1"), sf::ConfigError);
  Head::init({"bb", "bb", 2, 4}, 32, 0, 1).save(dir / "bb.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "base", dir / "bb.safetensors", dir / "m2"), sf::ConfigError);
  Head::init({"h", "hidden", 0, 0}, 32, 16, 1).save(dir / "h.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "other", dir / "h.safetensors", dir / "m3"), sf::ConfigError);
}

}  // namespace
