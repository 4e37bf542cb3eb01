// The model commands end to end: init-model from a real tokenizer, then generate and score.
#include <gtest/gtest.h>

#include <sstream>

#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

std::string cli() { return sf::test::cli_path().string(); }

TEST(ModelCli, InitModelGenerateScore) {
  sf::test::TempDir dir("model-cli");
  const auto tok = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-hf" / "tokenizer.json";
  const auto out = dir / "m";
  auto r = sf::test::run_command(cli() + " init-model --arch llama --layers 1 --hidden 32 --heads 4 --kv-heads 2" +
                                 " --vocab-from " + tok.string() + " --out " + out.string() + " --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f :
       {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(std::filesystem::exists(out / f)) << f;
  }
  auto model = sf::model::CausalLM::load(out);
  EXPECT_EQ(model.config().vocab_size, 32000);
  EXPECT_EQ(model.config().bos_token_id, 1);
  EXPECT_EQ(model.config().eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(model.config().num_key_value_heads, 2);

  // --ids: the printed continuation is the decoded greedy continuation of the library.
  r = sf::test::run_command(cli() + " generate --model " + out.string() + " --ids '1 450 4996' --max-new-tokens 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  sf::model::GenerateOptions opts;
  opts.max_new_tokens = 3;
  opts.eos_ids = {2};
  auto g = sf::model::generate(model, {{1, 450, 4996}}, opts);
  EXPECT_EQ(r.output, sf::tok::Tokenizer::from_file(tok).decode(g[0].tokens, true) + "\n");

  r = sf::test::run_command(cli() + " generate --model " + out.string() + " --prompt 'Hello' --template plain" +
                            " --max-new-tokens 2 --temperature 0.8 --top-p 0.9 --seed 1");
  EXPECT_EQ(r.exit_code, 0) << r.output;

  r = sf::test::run_command(cli() + " score --model " + out.string() + " --ids '1 450 4996'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_EQ(header, "position\tid\ttoken\tlogprob");
  int n = 0;
  while (std::getline(lines, line)) ++n;
  EXPECT_EQ(n, 3);
}

TEST(ModelCli, ErrorsAreOneLine) {
  sf::test::TempDir dir("model-cli-err");
  auto r = sf::test::run_command(cli() + " generate --model " + dir.path().string() + " --ids '1 2'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  r = sf::test::run_command(cli() + " generate --model " +
                            (sf::test::fixtures_dir() / "models" / "llama_tied").string() + " --ids '1 x'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--ids"), std::string::npos) << r.output;
}

}  // namespace
