// Tokenizers from GGUF metadata (tokenizer/gguf_tokenizer.hpp):
//   - byte-level BPE: SmolLM2's tokenizer.json written as llama.cpp's converter writes a `gpt2`
//     vocabulary (tokens by id, control types for its special tokens, merges), under the
//     pre-tokenizer names smollm, llama-bpe and qwen2; the ids must equal the golden ids that
//     `tokenizers` gave for the matching tokenizer.json (tests/fixtures/tokenizer);
//   - SentencePiece `llama`: tests/fixtures/gguf/spm.gguf (scripts/golden_gguf.py) against the ids
//     sentencepiece itself gives;
//   - which source wins (a tokenizer.json beside the file, tokenizer.huggingface.json), and refused
//     metadata.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "io/gguf.hpp"
#include "model/model_files.hpp"
#include "testutil/gguf_writer.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/gguf_tokenizer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sf::split;
using sf::test::GgufBuilder;

fs::path golden(const std::string& file) { return sf::test::fixtures_dir() / "tokenizer" / file; }

std::vector<std::string> cases() { return split(sf::test::read_file(golden("cases.inp")), "\n__case__\n"); }

std::vector<std::vector<int32_t>> golden_ids(const std::string& file) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& line : split(sf::test::read_file(golden(file)), "\n")) {
    std::vector<int32_t> ids;
    std::istringstream in(line);
    for (int32_t v = 0; in >> v;) ids.push_back(v);
    out.push_back(ids);
  }
  return out;
}

// SmolLM2's tokenizer.json as a `gpt2` GGUF vocabulary, as convert_hf_to_gguf.py writes one.
GgufBuilder smollm2_gguf(const std::string& pre, uint32_t bos = 1) {
  const json t = json::parse(sf::test::read_file(sf::test::shared_dir() / "models" /
                                                 "HuggingFaceTB--SmolLM2-135M-Instruct" / "tokenizer.json"));
  std::vector<std::string> tokens(t["model"]["vocab"].size());
  for (const auto& [tok, id] : t["model"]["vocab"].items()) tokens.at(id.get<size_t>()) = tok;
  std::vector<int32_t> types(tokens.size(), 1);
  for (const auto& a : t["added_tokens"]) types.at(a["id"].get<size_t>()) = a["special"].get<bool>() ? 3 : 4;
  std::vector<std::string> merges;
  for (const auto& m : t["model"]["merges"]) merges.push_back(m.get<std::string>());
  GgufBuilder b;
  b.str("general.architecture", "llama")
      .str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", pre)
      .strings("tokenizer.ggml.tokens", tokens)
      .i32s("tokenizer.ggml.token_type", types)
      .strings("tokenizer.ggml.merges", merges)
      .u32("tokenizer.ggml.bos_token_id", bos)
      .u32("tokenizer.ggml.eos_token_id", 2)
      .boolean("tokenizer.ggml.add_space_prefix", false);
  return b;
}

sf::tok::Tokenizer load(const fs::path& file) { return sf::model::load_tokenizer(file); }

void expect_golden(const sf::tok::Tokenizer& tok, const std::string& name, bool with_special) {
  const auto texts = cases();
  const auto plain = golden_ids(name + ".out");
  const auto special = golden_ids(name + ".special.out");
  ASSERT_GE(plain.size(), texts.size());
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (tok.encode(texts[i]) != plain[i]) ++mismatches;
    if (with_special && tok.encode(texts[i], true) != special[i]) ++mismatches;
    EXPECT_EQ(tok.encode(texts[i]), plain[i]) << name << " case " << i;
  }
  EXPECT_EQ(mismatches, 0) << name;
}

class GgufTokenizer : public ::testing::Test {
 protected:
  sf::test::TempDir dir{"gguf-tok"};
  fs::path write(const GgufBuilder& b, const std::string& name = "t.gguf") {
    const auto file = dir / name;
    sf::test::write_file(file, b.build());
    return file;
  }
};

TEST_F(GgufTokenizer, ByteLevelSmolLM2EqualsItsTokenizerJson) {
  const auto tok = load(write(smollm2_gguf("smollm")));
  expect_golden(tok, "HuggingFaceTB--SmolLM2-135M-Instruct", true);
  // Decoding as HF decode(ids, skip_special_tokens=False / True).
  const auto texts = cases();
  const auto decodes = split(sf::test::read_file(golden("HuggingFaceTB--SmolLM2-135M-Instruct.decode.jsonl")), "\n");
  for (size_t i = 0; i < texts.size(); ++i) {
    const json d = json::parse(decodes.at(i));
    const auto ids = tok.encode(texts[i], true);
    EXPECT_EQ(tok.decode(ids), d["decode"].get<std::string>()) << i;
    EXPECT_EQ(tok.decode(ids, true), d["decode_skip"].get<std::string>()) << i;
  }
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.post_bos_id().has_value());
}

TEST_F(GgufTokenizer, Llama3AndQwen2PreTokenizers) {
  // The llama3 family adds BOS by default (llama.cpp); the variant's template adds <|endoftext|>.
  const auto llama3 = load(write(smollm2_gguf("llama-bpe", 0)));
  EXPECT_EQ(llama3.post_bos_id(), 0);
  expect_golden(llama3, "smollm2-llama3-split", true);
  expect_golden(load(write(smollm2_gguf("qwen2"))), "smollm2-qwen2-split", true);
}

TEST_F(GgufTokenizer, SentencePieceEqualsSentencePiece) {
  const auto file = sf::test::fixtures_dir() / "gguf" / "spm.gguf";
  const auto tok = load(file);
  const auto texts = cases();
  int checked = 0;
  for (const auto& line : split(sf::test::read_file(sf::test::fixtures_dir() / "gguf" / "spm.ids.jsonl"), "\n")) {
    if (line.empty()) continue;
    const json r = json::parse(line);
    const size_t i = r["case"].get<size_t>();
    EXPECT_EQ(tok.encode(texts.at(i)), r["ids"].get<std::vector<int32_t>>()) << "case " << i;
    ++checked;
  }
  EXPECT_GT(checked, 100);
  // BOS added (llama.cpp's default for SentencePiece), one leading space stripped on decoding.
  const auto ids = tok.encode("Hello world", true);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tok.decode(ids, true), "Hello world");
  EXPECT_TRUE(tok.is_special(0));  // <unk>
}

TEST_F(GgufTokenizer, WhichSourceWins) {
  // A GGUF's own tokenizer.huggingface.json is used as it is.
  const std::string hf =
      sf::test::read_file(sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-hf" / "tokenizer.json");
  auto b = smollm2_gguf("smollm");
  b.str("tokenizer.huggingface.json", hf);
  const auto own = write(b, "own.gguf");
  EXPECT_EQ(load(own).content_hash(), sf::tok::Tokenizer::from_json_text(hf, "x").content_hash());
  // A tokenizer.json beside the file wins over both.
  sf::test::TempDir beside("gguf-beside");
  fs::copy_file(sf::test::fixtures_dir() / "gguf" / "spm.gguf", beside / "m.gguf");
  fs::copy_file(sf::test::shared_dir() / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct" / "tokenizer.json",
                beside / "tokenizer.json");
  EXPECT_EQ(load(beside / "m.gguf").vocab_size(), 49152);
  EXPECT_EQ(load(beside / "m.gguf").path(), beside / "tokenizer.json");
  // No tokenizer at all.
  const auto model_only = sf::test::fixtures_dir() / "gguf" / "llama_untied.Q8_0.gguf";
  EXPECT_FALSE(sf::model::has_tokenizer(model_only));
  EXPECT_THROW(load(model_only), sf::IoError);
}

TEST_F(GgufTokenizer, SameFileSameDocument) {
  const auto file = sf::test::fixtures_dir() / "gguf" / "spm.gguf";
  EXPECT_EQ(sf::model::tokenizer_json_text(file), sf::model::tokenizer_json_text(file));
  EXPECT_EQ(load(file).content_hash(), load(file).content_hash());
}

void expect_error(const fs::path& file, const std::string& what) {
  try {
    sf::model::load_tokenizer(file);
    ADD_FAILURE() << "expected a FormatError containing '" << what << "'";
  } catch (const sf::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST_F(GgufTokenizer, RefusedMetadata) {
  auto small = [](const std::string& model) {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", model).strings("tokenizer.ggml.tokens", {"<unk>", "a", "b", "ab"});
    return b;
  };
  expect_error(write(small("bert")), "metadata 'tokenizer.ggml.model': 'bert' is not supported (gpt2, llama)");
  auto b = small("gpt2");
  b.strings("tokenizer.ggml.merges", {"a b"});
  expect_error(write(b), "metadata 'tokenizer.ggml.pre': is missing");
  b.str("tokenizer.ggml.pre", "falcon");
  expect_error(write(b), "metadata 'tokenizer.ggml.pre': 'falcon' is not supported");
  b = small("gpt2");
  b.str("tokenizer.ggml.pre", "gpt-2").strings("tokenizer.ggml.merges", {"a c"});
  expect_error(write(b), "model.merges[0]: token 'c' out of vocabulary");
  b = small("llama");
  b.f32s("tokenizer.ggml.scores", {0, -1, -2});
  expect_error(write(b), "metadata 'tokenizer.ggml.scores': 3 scores for 4 tokens");
  b = small("llama");
  b.f32s("tokenizer.ggml.scores", {0, -1, -2, -3}).i32s("tokenizer.ggml.token_type", {2, 1});
  expect_error(write(b), "metadata 'tokenizer.ggml.token_type': 2 types for 4 tokens");
  b = small("llama");
  b.f32s("tokenizer.ggml.scores", {0, -1, -2, -3}).u32("tokenizer.ggml.bos_token_id", 4);
  expect_error(write(b), "metadata 'tokenizer.ggml.bos_token_id': token id 4 is outside the 4 tokens");
  b = small("llama");
  b.f32s("tokenizer.ggml.scores", {0, -1, -2, -3}).str("tokenizer.ggml.precompiled_charsmap", "x");
  expect_error(write(b), "metadata 'tokenizer.ggml.precompiled_charsmap': unknown or unsupported tokenizer key");
  GgufBuilder dup;
  dup.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", {"<unk>", "a", "a"})
      .f32s("tokenizer.ggml.scores", {0, -1, -2});
  expect_error(write(dup), "token 2 repeats token 1 ('a')");
  // A minimal SentencePiece vocabulary works: "ab" merged from a + b.
  b = small("llama");
  b.f32s("tokenizer.ggml.scores", {0, -1, -2, -3}).boolean("tokenizer.ggml.add_space_prefix", false);
  const auto tok = load(write(b));
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{3}));
}

}  // namespace
