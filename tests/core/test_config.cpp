#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/hash.hpp"

namespace {

TEST(Config, TypedReadsAndUnknownKeys) {
  auto c = sf::ConfigNode::parse("a: 3\nb: {x: 1.5, y: [1, 2]}\n", "t.yaml");
  EXPECT_EQ(c.get<int>("a"), 3);
  auto b = c.child("b");
  EXPECT_DOUBLE_EQ(b.get<double>("x"), 1.5);
  EXPECT_THROW(c.finish(), sf::ConfigError);  // b.y never read
  EXPECT_EQ(b.get<std::vector<int>>("y").size(), 2u);
  EXPECT_NO_THROW(c.finish());
}

TEST(Config, ErrorsNameFileAndKey) {
  auto c = sf::ConfigNode::parse("model: {lr: fast}\n", "job.yaml");
  try {
    c.child("model").get<double>("lr");
    FAIL() << "expected ConfigError";
  } catch (const sf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("job.yaml: model.lr"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.get<int>("missing"), sf::ConfigError);
  EXPECT_THROW(sf::ConfigNode::parse("a: [1, 2", "bad.yaml"), sf::ConfigError);
}

TEST(Config, Overrides) {
  YAML::Node root = YAML::Load("heads: {lr: 0.1}\n");
  sf::apply_override(root, "heads.lr=0.5");
  sf::apply_override(root, "eval.tasks=[gsm8k, advbench]");
  EXPECT_DOUBLE_EQ(root["heads"]["lr"].as<double>(), 0.5);
  EXPECT_EQ(root["eval"]["tasks"].size(), 2u);
  EXPECT_THROW(sf::apply_override(root, "novalue"), sf::ConfigError);
  EXPECT_THROW(sf::apply_override(root, "heads.lr.x=1"), sf::ConfigError);
}

TEST(Hash, Sha256KnownVector) {
  EXPECT_EQ(sf::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace

#include "core/job.hpp"

namespace {

TEST(Job, NamedModelsCommonKeysAndSections) {
  const std::string y =
      "run_dir: runs/x\nseed: 7\nmodels:\n  llama-7b: {path: m/b, template: plain}\n  llama-7b-chat: {path: m/a, "
      "template: chatml, dtype: bfloat16}\nheads: {lr: 0.01}\n";
  auto job = sf::Job::parse(y, "job.yaml", {"seed=9", "models.llama-7b.path=m/c"});
  EXPECT_EQ(job.seed(), 9u);
  EXPECT_EQ(job.model("llama-7b-chat").template_name, "chatml");
  EXPECT_EQ(job.model("llama-7b-chat").dtype, "bfloat16");
  EXPECT_EQ(job.model("llama-7b").path, "m/c");
  EXPECT_EQ(job.models().size(), 2u);
  EXPECT_DOUBLE_EQ(job.section("heads").get<double>("lr"), 0.01);
  EXPECT_THROW(job.model("compromised"), sf::ConfigError);
  EXPECT_THROW(sf::Job::parse(y + "typo_key: 1\n", "job.yaml"), sf::ConfigError);
  EXPECT_THROW(sf::Job::parse("run_dir: r\nmodels: {b: {path: p}}\n", "job.yaml"), sf::ConfigError);  // no template
  EXPECT_THROW(sf::Job::parse("run_dir: r\nmodels: {b: {path: p, template: plain, extra: 1}}\n", "job.yaml"),
               sf::ConfigError);
  EXPECT_THROW(sf::Job::parse("run_dir: r\nmodels: {a/b: {path: p, template: plain}}\n", "job.yaml"),
               sf::ConfigError);  // not a name
}

TEST(Job, AFormatV1JobIsRefusedWithWhatToChange) {
  try {
    sf::Job::parse("run_dir: r\nevaluate: {systems: [base, aligned]}\n", "old.yaml");
    FAIL();
  } catch (const sf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("format v1"), std::string::npos) << e.what();
  }
}

}  // namespace
