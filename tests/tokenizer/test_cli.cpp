// The tokenize / detokenize / bench tokenize / template commands, run as a user would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;

std::string cli() { return sf::test::cli_path().string(); }
std::string model(const std::string& folder, const std::string& file = "tokenizer.json") {
  return (sf::test::shared_dir() / "models" / folder / file).string();
}
fs::path golden(const std::string& file) { return sf::test::fixtures_dir() / "tokenizer" / file; }

TEST(TokenizeCli, CasesFileEqualsGolden) {
  const std::string name = "mistralai--Mistral-7B-Instruct-v0.3";
  auto r = sf::test::run_command(cli() + " tokenize --tokenizer " + model(name) + " --cases " +
                                 golden("cases.inp").string() + " --add-special");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, sf::test::read_file(golden(name + ".special.out")));
}

TEST(TokenizeCli, StdinRoundTrip) {
  const std::string tok = model("meta-llama--Llama-2-7b-hf");
  auto r = sf::test::run_command("printf 'Hello world' | " + cli() + " tokenize --tokenizer " + tok + " --add-special");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "1 15043 3186\n");
  r = sf::test::run_command("echo '1 15043 3186' | " + cli() + " detokenize --tokenizer " + tok + " --skip-special");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "Hello world");
  r = sf::test::run_command("echo '1 99999' | " + cli() + " detokenize --tokenizer " + tok);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("token id 99999 is out of range"), std::string::npos) << r.output;
  r = sf::test::run_command("echo '1 x' | " + cli() + " detokenize --tokenizer " + tok);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("'x' is not an integer"), std::string::npos) << r.output;
}

TEST(TokenizeCli, BenchPrintsJson) {
  auto r =
      sf::test::run_command(cli() + " bench tokenize --tokenizer " + model("HuggingFaceTB--SmolLM2-135M-Instruct") +
                            " --input " + golden("cases.inp").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_GT(j.at("mb_per_s").get<double>(), 0.0);
  EXPECT_GT(j.at("tokens").get<int64_t>(), 1000);
  EXPECT_EQ(j.at("bytes").get<int64_t>(), static_cast<int64_t>(fs::file_size(golden("cases.inp"))));
}

TEST(TemplateCli, CheckMatchesAndReportsMismatch) {
  const std::string base = cli() + " template check --golden " + golden("chat_templates.json").string();
  auto r = sf::test::run_command(base + " --tokenizer-config " +
                                 model("mistralai--Mistral-7B-Instruct-v0.3", "tokenizer_config.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("preset mistral-inst"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("user: match"), std::string::npos) << r.output;
  r = sf::test::run_command(base + " --template chatml --tokenizer-config " +
                            model("meta-llama--Meta-Llama-3-8B-Instruct", "tokenizer_config.json"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("MISMATCH"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("first difference at byte 2"), std::string::npos) << r.output;
  r = sf::test::run_command(base + " --tokenizer-config " +
                            model("meta-llama--Llama-2-7b-hf", "tokenizer_config.json"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("chat_template: missing"), std::string::npos) << r.output;
}

TEST(TemplateCli, Render) {
  auto r = sf::test::run_command(cli() + " template render --template zephyr --user Hi");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "<|user|>\nHi</s>\n<|assistant|>\n");
}

}  // namespace
