// Studies as data: named models, heads from pairs, systems and comparisons, checked before any
// compute; two pairs in one job extract into two datasets and each head trains on its own pair.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/job.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/head_set.hpp"
#include "model/causal_lm.hpp"
#include "study/study.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;
using sf::test::run_command;

const char* kEnv = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 ";

// A tiny random llama with SmolLM2's tokenizer (or Llama-2's, for a model of another tokenizer).
void make_model(const fs::path& dir, int64_t hidden, uint64_t seed, bool llama2_tokenizer = false) {
  const auto tok =
      sf::test::shared_dir() / (llama2_tokenizer ? "models/meta-llama--Llama-2-7b-hf/tokenizer.json"
                                                 : "models/HuggingFaceTB--SmolLM2-135M-Instruct/tokenizer.json");
  const nlohmann::json cfg = {{"model_type", "llama"},    {"vocab_size", llama2_tokenizer ? 32000 : 49152},
                              {"hidden_size", hidden},    {"intermediate_size", 2 * hidden},
                              {"num_hidden_layers", 1},   {"num_attention_heads", 2},
                              {"num_key_value_heads", 2}, {"max_position_embeddings", 256},
                              {"rms_norm_eps", 1e-6},     {"tie_word_embeddings", true},
                              {"bos_token_id", 1},        {"eos_token_id", 2}};
  sf::model::CausalLM::random(sf::model::ModelConfig::from_json(cfg, "tiny"), seed).save(dir);
  fs::create_symlink(tok, dir / "tokenizer.json");
}

std::string models_yaml(const fs::path& m) {
  return "models:\n  a: {path: " + (m / "a").string() + ", template: plain}\n  b: {path: " + (m / "b").string() +
         ", template: chatml}\n  c: {path: " + (m / "c").string() +
         ", template: chatml}\n  wide: {path: " + (m / "wide").string() +
         ", template: plain}\n  other-tok: {path: " + (m / "other").string() + ", template: plain}\n";
}

class StudyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new sf::test::TempDir("study");
    const fs::path m = dir_->path() / "models";
    make_model(m / "a", 32, 1);
    make_model(m / "b", 32, 2);
    make_model(m / "c", 32, 3);
    make_model(m / "wide", 48, 4);
    make_model(m / "other", 32, 5, /*llama2_tokenizer=*/true);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string base_job(const std::string& body) {
    return "run_dir: " + (dir_->path() / "run").string() +
           "\nseed: 3\nthreads: 1\ndata_root: " + (sf::test::shared_dir() / "data").string() + "\n" +
           models_yaml(dir_->path() / "models") + body;
  }
  static sf::test::TempDir* dir_;
};
sf::test::TempDir* StudyTest::dir_ = nullptr;

TEST_F(StudyTest, ParsesPairsHeadsSystemsAndComparisons) {
  const sf::Job job = sf::Job::parse(base_job(R"(
heads:
  from: {base: a, aligned: b}
  variants:
    - {name: h-ab, type: hidden}
    - {name: bb-ac, type: bb, k: 8, rank: 2, from: {base: a, aligned: c}}
    - {name: bb-ab, type: bb, k: 8, rank: 2}
systems:
  A: {model: a}
  B: {model: b}
  A+bb: {model: wide, head: bb-ab}
  A-proxy: {model: wide, proxy: {expert: b, anti_expert: a, alpha: 0.5}}
comparisons:
  - {name: cmp, base: A, aligned: B, systems: [A+bb, A-proxy]}
)"),
                                     "job.yaml");
  const auto st = sf::study::Study::from_job(job);
  ASSERT_EQ(st.pairs().size(), 2u);  // (a,b) shared by two heads, (a,c)
  EXPECT_EQ(st.pairs()[0].id(), "a__b");
  EXPECT_EQ(st.pairs()[1].id(), "a__c");
  EXPECT_EQ(st.head("bb-ac").from->aligned, "c");
  EXPECT_EQ(st.systems().size(), 4u);
  EXPECT_EQ(st.models_of(st.system("A-proxy")), (std::vector<std::string>{"wide", "b", "a"}));
  EXPECT_EQ(st.describe(st.system("A+bb")), "wide + head bb-ab (bb, from a → b)");
  EXPECT_EQ(st.describe(st.system("A-proxy")), "wide + 0.5·(b − a) (proxy-tuning)");
  EXPECT_NO_THROW(st.check_compatibility(job));  // bb heads need the same tokenizer, not the hidden size
}

TEST_F(StudyTest, SetReachesSystemsHeadsAndComparisons) {
  const std::string body =
      "heads:\n  from: {base: a, aligned: b}\n  variants: [{name: h, type: hidden}]\n"
      "systems:\n  A: {model: a}\n  B: {model: b}\ncomparisons:\n  - {name: c, base: A, aligned: B}\n";
  const auto st = sf::study::Study::from_job(sf::Job::parse(
      base_job(body), "job.yaml", {"systems.A.model=c", "systems.A+h={model: wide, head: h}", "heads.from.aligned=c"}));
  EXPECT_EQ(st.system("A").model, "c");
  EXPECT_EQ(st.system("A+h").head, "h");
  EXPECT_EQ(st.pairs().at(0).aligned, "c");
  EXPECT_THROW(sf::study::Study::from_job(sf::Job::parse(base_job(body), "job.yaml", {"systems.A.modle=c"})),
               sf::ConfigError);  // unknown keys stay errors
}

TEST_F(StudyTest, AComparisonOfASystemWithItselfIsRefused) {
  const std::string body = "systems:\n  A: {model: a}\ncomparisons:\n  - {name: x, base: A, aligned: A}\n";
  try {
    sf::study::Study::from_job(sf::Job::parse(base_job(body), "job.yaml"));
    FAIL();
  } catch (const sf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("same system 'A' as base and aligned"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sf::study::Study::from_job(sf::Job::parse(
                   base_job("systems:\n  A: {model: a}\ncomparisons:\n  - {name: x, base: A, aligned: Z}\n"), "j")),
               sf::ConfigError);
  EXPECT_THROW(sf::study::Study::from_job(sf::Job::parse(base_job("systems:\n  A: {model: nobody}\n"), "j")),
               sf::ConfigError);
  EXPECT_THROW(sf::study::Study::from_job(sf::Job::parse(base_job("systems:\n  A: {model: a, head: h}\n"), "j")),
               sf::ConfigError);  // no such head
}

// A head on a model of another tokenizer or (for hidden heads) another hidden size is a one-line
// error naming both models, before anything is computed or written.
TEST_F(StudyTest, HeadOnAnIncompatibleModelFailsBeforeAnyCompute) {
  const std::string heads =
      "heads:\n  from: {base: a, aligned: b}\n  variants: [{name: h, type: hidden}, {name: bb, "
      "type: bb, k: 8, rank: 2}]\ntasks: [advbench]\n";
  struct Case {
    std::string system, expect;
  };
  for (const Case& c :
       {Case{"{model: wide, head: h}", "reads hidden states of size 32 (a), but wide has hidden size 48"},
        Case{"{model: other-tok, head: bb}", "cannot go on other-tok: the tokenizers differ"},
        Case{"{model: a, proxy: {expert: other-tok, anti_expert: a}}",
             "proxy model other-tok does not share the tokenizer of a"}}) {
    const fs::path run = dir_->path() / "incompatible";
    fs::remove_all(run);
    sf::test::write_file(dir_->path() / "bad.yaml", base_job(heads + "systems:\n  S: " + c.system + "\n"));
    const auto r = run_command("cd " + sf::test::source_dir().string() + " && " + kEnv + sf::test::cli_path().string() +
                               " run " + (dir_->path() / "bad.yaml").string() + " --set run_dir=" + run.string());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(run / "extract")) << "compute started before the check";
  }
}

TEST_F(StudyTest, TwoPairsExtractIntoTwoDatasetsAndHeadsTrainOnTheirOwn) {
  const fs::path run = dir_->path() / "two-pairs";
  sf::test::write_file(dir_->path() / "two.yaml", base_job(R"(
tasks: [advbench]
extract: {max_examples: 4, max_new_tokens: 4, top_k: 10, batch_size: 4, chunk_examples: 2}
heads:
  lr: 0.01
  epochs: 1
  batch_tokens: 8
  val_fraction: 0.25
  variants:
    - {name: h-ab, type: hidden, from: {base: a, aligned: b}}
    - {name: h-ac, type: hidden, from: {base: a, aligned: c}}
)"));
  const std::string cli = sf::test::cli_path().string(), job = (dir_->path() / "two.yaml").string();
  const std::string cd = "cd " + sf::test::source_dir().string() + " && ";
  auto r = run_command(cd + kEnv + "mpirun --oversubscribe -np 2 " + cli + " extract " + job +
                       " --set run_dir=" + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(cd + kEnv + cli + " train-head " + job + " --set run_dir=" + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* pair : {"a__b", "a__c"}) {
    const auto ds = sf::extract::LogitDataset::open(run / "extract" / pair / "logits.h5");
    EXPECT_EQ(ds.num_examples(), 4);
    const auto attrs = ds.attributes();
    EXPECT_EQ(nlohmann::json::parse(attrs.at("pair").get<std::string>()).at("aligned"), std::string(pair).substr(3));
  }
  // The two aligned models differ, so their teacher logits do.
  EXPECT_FALSE(sf::extract::LogitDataset::open(run / "extract/a__b/logits.h5")
                   .example(0)
                   .aligned_topk_logits.equal(
                       sf::extract::LogitDataset::open(run / "extract/a__c/logits.h5").example(0).aligned_topk_logits));
  for (const auto& [head, pair] :
       std::vector<std::pair<std::string, std::string>>{{"h-ab", "a__b"}, {"h-ac", "a__c"}}) {
    const auto set = sf::heads::HeadSet::load(run / "heads" / (head + ".safetensors"));
    EXPECT_EQ(set.metadata().at("dataset"), (run / "extract" / pair / "logits.h5").string()) << head;
    EXPECT_EQ(set.metadata().at("pair_aligned"), pair.substr(3)) << head;
  }
}

}  // namespace

namespace {

// Every shipped job is a valid study (keys, names, heads, systems and comparisons), read as the CLI
// reads it from the repository root.
TEST(ShippedJobs, ParseAsStudies) {
  const fs::path cwd = fs::current_path();
  fs::current_path(sf::test::source_dir());
  for (const auto& e : fs::directory_iterator("jobs")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW({
      const sf::Job job = sf::Job::load(e.path());
      sf::study::Study::from_job(job);
    });
  }
  fs::current_path(cwd);
}

}  // namespace
