// Saving/loading heads, and folding a hidden head into a model (export-merged).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "heads/base_model.hpp"
#include "heads/export.hpp"
#include "heads/head_set.hpp"
#include "heads/synthetic.hpp"
#include "io/safetensors.hpp"
#include "model/causal_lm.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::heads::Head;
using sf::heads::HeadSet;
using sf::heads::HeadSpec;

void randomise(const Head& head, uint64_t seed) {
  torch::manual_seed(seed);
  for (const auto& [name, t] : head.named_parameters()) t.copy_(0.1 * torch::randn(t.sizes()));
}

TEST(HeadIo, SaveLoadRoundTripWithMetadata) {
  sf::test::TempDir dir("heads_io");
  for (const HeadSpec& spec :
       {HeadSpec{"h", "hidden", 0, 0}, HeadSpec{"lr", "hidden", 3, 0, "random"}, HeadSpec{"bb", "bb", 4, 10},
        HeadSpec{"b", "bias", 0, 0}, HeadSpec{"bl", "bb_linear", 2, 10}}) {
    const Head head = Head::init(spec, 40, 8, 1);
    randomise(head, 2);
    const auto file = dir / (spec.name + ".safetensors");
    HeadSet::joint(head).save(file,
                              {{"base_model_hash", "abc"}, {"tokenizer_hash", "def"}, {"config", "{\"lr\": 0.1}"}});
    const HeadSet back = HeadSet::load(file);
    EXPECT_FALSE(back.is_per_task());
    const Head& h = back.for_task("any task");
    EXPECT_EQ(h.spec().name, spec.name);
    EXPECT_EQ(h.type(), spec.type);
    EXPECT_EQ(h.spec().rank, spec.rank);
    EXPECT_EQ(h.spec().k, spec.k);
    EXPECT_EQ(h.spec().init, spec.init);
    EXPECT_EQ(h.vocab_size(), 40);
    EXPECT_EQ(h.hidden_size(), head.hidden_size());
    EXPECT_EQ(back.metadata().at("base_model_hash"), "abc");
    EXPECT_EQ(back.metadata().at("tokenizer_hash"), "def");
    EXPECT_EQ(back.metadata().at("config"), "{\"lr\": 0.1}");
    EXPECT_EQ(back.metadata().at("format"), "superficial-head-v2");
    ASSERT_EQ(h.named_parameters().size(), head.named_parameters().size());
    for (size_t i = 0; i < head.named_parameters().size(); ++i)
      EXPECT_TRUE(h.named_parameters()[i].second.equal(head.named_parameters()[i].second)) << spec.name;
    torch::manual_seed(3);
    const auto logits = torch::randn({2, 40});
    const auto hidden = torch::randn({2, 8});
    EXPECT_TRUE(h.apply(logits, hidden).equal(head.apply(logits, hidden)));
  }
}

TEST(HeadIo, PerTaskHeadsShareOneFile) {
  sf::test::TempDir dir("heads_io_per_task");
  const Head a = Head::init({"h", "hidden", 0, 0}, 40, 8, 1), b = Head::init({"h", "hidden", 0, 0}, 40, 8, 2);
  randomise(a, 4);
  randomise(b, 5);
  HeadSet::per_task({{"gsm8k", a}, {"advbench", b}}).save(dir / "h.safetensors");
  const HeadSet back = HeadSet::load(dir / "h.safetensors");
  ASSERT_TRUE(back.is_per_task());
  EXPECT_EQ(back.tasks(), (std::vector<std::string>{"advbench", "gsm8k"}));
  EXPECT_TRUE(back.for_task("gsm8k").named_parameters()[0].second.equal(a.named_parameters()[0].second));
  EXPECT_TRUE(back.for_task("advbench").named_parameters()[0].second.equal(b.named_parameters()[0].second));
  EXPECT_THROW(back.for_task("toxigen"), sf::ConfigError);
  EXPECT_THROW(HeadSet::per_task({{"x", a}, {"y", Head::init({"h", "hidden", 2, 0}, 40, 8, 1)}}), sf::ShapeError);
}

TEST(HeadIo, RejectsFilesThatAreNotHeads) {
  sf::test::TempDir dir("heads_io_bad");
  sf::io::write_safetensors(dir / "plain.safetensors", {{"bias", torch::zeros({4})}});
  EXPECT_THROW(HeadSet::load(dir / "plain.safetensors"), sf::FormatError);
  // Right metadata, wrong shape.
  const std::map<std::string, std::string> meta = {{"format", "superficial-head-v2"},
                                                   {"name", "b"},
                                                   {"type", "bias"},
                                                   {"rank", "0"},
                                                   {"k", "0"},
                                                   {"init", "zero"},
                                                   {"vocab_size", "5"},
                                                   {"hidden_size", "0"}};
  sf::io::write_safetensors(dir / "shape.safetensors", {{"bias", torch::zeros({4})}}, meta);
  EXPECT_THROW(HeadSet::load(dir / "shape.safetensors"), sf::FormatError);
  auto bad_rank = meta;
  bad_rank["rank"] = "x";
  sf::io::write_safetensors(dir / "rank.safetensors", {{"bias", torch::zeros({5})}}, bad_rank);
  EXPECT_THROW(HeadSet::load(dir / "rank.safetensors"), sf::FormatError);
  sf::io::write_safetensors(dir / "extra.safetensors", {{"bias", torch::zeros({5})}, {"more", torch::zeros({1})}},
                            meta);
  EXPECT_THROW(HeadSet::load(dir / "extra.safetensors"), sf::FormatError);
  // A v1 head (bb heads were then served differently) is refused with what to do.
  auto v1 = meta;
  v1["format"] = "superficial-head-v1";
  sf::io::write_safetensors(dir / "v1.safetensors", {{"bias", torch::zeros({5})}}, v1);
  try {
    HeadSet::load(dir / "v1.safetensors");
    FAIL();
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("retrain"), std::string::npos) << e.what();
  }
  sf::io::write_safetensors(dir / "good.safetensors", {{"bias", torch::zeros({5})}}, meta);
  EXPECT_NO_THROW(HeadSet::load(dir / "good.safetensors"));
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
  HeadSet::joint(head).save(dir / "h.safetensors", {{"base_model_hash", sf::heads::model_fingerprint(dir / "base")}});
  sf::heads::export_merged(dir / "base", dir / "h.safetensors", dir / "merged");

  const auto base = run(dir / "base");
  const auto merged = run(dir / "merged");
  const auto expected =
      HeadSet::load(dir / "h.safetensors").for_task("").apply(base.logits[0], base.hidden[0]);  // [T,V]
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
  HeadSet::joint(Head::init({"b", "bias", 0, 0}, 32, 0, 1)).save(dir / "b.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "base", dir / "b.safetensors", dir / "m1"), sf::ConfigError);
  HeadSet::joint(Head::init({"bb", "bb", 2, 4}, 32, 0, 1)).save(dir / "bb.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "base", dir / "bb.safetensors", dir / "m2"), sf::ConfigError);
  HeadSet::joint(Head::init({"h", "hidden", 0, 0}, 32, 16, 1)).save(dir / "h.safetensors", {{"base_model_hash", hash}});
  EXPECT_THROW(sf::heads::export_merged(dir / "other", dir / "h.safetensors", dir / "m3"), sf::ConfigError);
}

}  // namespace
