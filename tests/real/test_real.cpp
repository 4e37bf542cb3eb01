// The real-model tier: SmolLM2-135M-Instruct, Q4_1, straight from its GGUF file (fetched by
// scripts/fetch-models.sh into $SF_MODELS_CACHE). Against fixtures made by transformers' own GGUF
// loader (scripts/golden_real.py, tests/fixtures/real):
//   per-token log-probs of plain and chat-formatted texts   max |Δ| <= 1e-4 (fp32, cpu)
//   greedy 64-token answers to 5 chat prompts                identical
// and the tokenizer read from the GGUF metadata against SmolLM2's own tokenizer.json: identical ids
// on every tokenizer golden text (tests/fixtures/tokenizer, made by `tokenizers`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/text.hpp"
#include "heads/base_model.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "model/gguf_convert.hpp"
#include "model/model_files.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/chat_template.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sf::split;
using sf::model::CausalLM;

constexpr double kLogprobTol = 1e-4;

// The rule of scripts/fetch-models.sh.
fs::path model_file() {
  fs::path cache;
  if (const char* c = std::getenv("SF_MODELS_CACHE"); c && *c) {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = fs::path(x) / "superficial" / "models";
  } else {
    cache = fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/") / ".cache" / "superficial" / "models";
  }
  return cache / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

json fixture() {
  return json::parse(sf::test::read_file(sf::test::fixtures_dir() / "real" / "smollm2-135m-instruct-q4_1.json"));
}

class Real : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(model_file())) << model_file() << " is missing: run scripts/fetch-models.sh";
    model = new CausalLM(CausalLM::load(model_file()));
  }
  static void TearDownTestSuite() {
    delete model;
    model = nullptr;
  }
  static CausalLM* model;
};
CausalLM* Real::model = nullptr;

TEST_F(Real, ConfigFromMetadata) {
  const auto& c = model->config();
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
}

TEST_F(Real, TokenizerFromGgufEqualsTokenizerJson) {
  const auto tok = sf::model::load_tokenizer(model_file());
  const auto dir = sf::test::fixtures_dir() / "tokenizer";
  const auto cases = split(sf::test::read_file(dir / "cases.inp"), "\n__case__\n");
  const auto plain = split(sf::test::read_file(dir / "HuggingFaceTB--SmolLM2-135M-Instruct.out"), "\n");
  const auto special = split(sf::test::read_file(dir / "HuggingFaceTB--SmolLM2-135M-Instruct.special.out"), "\n");
  auto line = [](const std::vector<int32_t>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) s += ' ';
      s += std::to_string(ids[i]);
    }
    return s;
  };
  ASSERT_GE(plain.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(line(tok.encode(cases[i])), plain[i]) << "case " << i;
    EXPECT_EQ(line(tok.encode(cases[i], true)), special[i]) << "case " << i;
  }
  // The fixture's ids are tokenizer.json's too.
  const json fx = fixture();
  for (const auto& t : fx["logprobs"]) {
    EXPECT_EQ(tok.encode(t["text"].get<std::string>()), t["ids"].get<std::vector<int32_t>>());
  }
}

TEST_F(Real, LogprobsMatchTransformers) {
  double worst = 0;
  const json fx = fixture();
  for (const auto& t : fx["logprobs"]) {
    const auto ids = t["ids"].get<std::vector<int32_t>>();
    const auto want = t["logprobs"].get<std::vector<double>>();
    const auto got = sf::model::score(*model, {ids}, {}).token_logprobs.at(0);
    ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
    double diff = 0;
    for (size_t i = 1; i < want.size(); ++i) {
      diff = std::max(diff, std::abs(got[static_cast<int64_t>(i)].item<double>() - want[i]));
    }
    EXPECT_LE(diff, kLogprobTol) << t["name"];
    worst = std::max(worst, diff);
  }
  RecordProperty("max_abs_logprob_diff", std::to_string(worst));
}

TEST_F(Real, GreedyAnswersMatchTransformers) {
  const auto tok = sf::model::load_tokenizer(model_file());
  const auto chatml = sf::tok::ChatTemplate::preset("chatml");
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> want;
  const json fx = fixture();
  for (const auto& g : fx["greedy"]) {
    const auto rendered = chatml.prompt(g["prompt"].get<std::string>());
    prompts.push_back(tok.encode(rendered.text, rendered.add_special_tokens));
    EXPECT_EQ(prompts.back(), g["prompt_ids"].get<std::vector<int32_t>>());
    want.push_back(g["tokens"].get<std::vector<int32_t>>());
  }
  sf::model::GenerateOptions opts;
  opts.max_new_tokens = 64;
  opts.eos_ids = model->config().eos_token_ids;
  opts.batch_size = 5;  // one left-padded batch (transformers generated them one at a time, unpadded)
  const auto got = sf::model::generate(*model, prompts, opts);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i]) << fx["greedy"][i]["prompt"] << ": " << tok.decode(got[i].tokens);
  }
  EXPECT_NE(tok.decode(got[0].tokens).find("Paris"), std::string::npos);
}

TEST_F(Real, FingerprintsAndLmHead) {
  EXPECT_EQ(sf::heads::tokenizer_fingerprint(model_file()), sf::model::load_tokenizer(model_file()).content_hash());
  EXPECT_EQ(sf::heads::model_fingerprint(model_file()).size(), 64u);
  EXPECT_TRUE(torch::equal(sf::heads::load_lm_head_weight(model_file()), model->lm_head_weight()));
}

TEST_F(Real, ConvertedFolderIsTheSameModel) {
  sf::test::TempDir dir("real-convert");
  sf::model::convert_gguf(model_file(), dir / "hf", torch::kBFloat16);
  sf::model::LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  const CausalLM a = CausalLM::load(model_file(), bf16), b = CausalLM::load(dir / "hf", bf16);
  const json fx = fixture();
  const auto ids = fx["logprobs"][0]["ids"].get<std::vector<int32_t>>();
  const auto sa = sf::model::score(a, {ids}, {}), sb = sf::model::score(b, {ids}, {});
  EXPECT_TRUE(torch::equal(sa.token_logprobs[0], sb.token_logprobs[0]));
  EXPECT_EQ(sf::model::load_tokenizer(dir / "hf").content_hash(),
            sf::model::load_tokenizer(model_file()).content_hash());
}

}  // namespace
