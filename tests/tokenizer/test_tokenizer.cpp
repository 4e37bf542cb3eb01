#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sf::tok::Tokenizer;

fs::path model_file(const std::string& folder) { return sf::test::shared_dir() / "models" / folder / "tokenizer.json"; }

// A tiny byte-level BPE tokenizer.json; tests replace parts of it.
json tiny() {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"a", "b", "c", "ab", "abc", "<eos>"}) vocab[t] = id++;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({json{{"id", 5},
                                         {"content", "<eos>"},
                                         {"special", true},
                                         {"lstrip", false},
                                         {"rstrip", false},
                                         {"single_word", false},
                                         {"normalized", false}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", json::array({"ab", "c"})})}}}};
}

Tokenizer load(const json& j, const sf::test::TempDir& tmp) {
  sf::test::write_file(tmp / "tokenizer.json", j.dump());
  return Tokenizer::from_file(tmp / "tokenizer.json");
}

std::string format_error(const json& j) {
  sf::test::TempDir tmp("tok-err");
  try {
    load(j, tmp);
  } catch (const sf::FormatError& e) {
    return e.what();
  }
  return "(no FormatError)";
}

TEST(Tokenizer, TinyBpeMergesStringAndPairForms) {
  sf::test::TempDir tmp("tok-tiny");
  const Tokenizer t = load(tiny(), tmp);
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{4}));
  EXPECT_EQ(t.encode("abab<eos>c"), (std::vector<int32_t>{3, 3, 5, 2}));
  EXPECT_EQ(t.decode({4, 5, 0}), "abc<eos>a");
  EXPECT_EQ(t.decode({4, 5, 0}, true), "abca");
  EXPECT_EQ(t.vocab_size(), 6);
  EXPECT_EQ(t.token_to_id("ab"), 3);
  EXPECT_FALSE(t.token_to_id("zz").has_value());
  EXPECT_TRUE(t.is_special(5));
  EXPECT_FALSE(t.is_special(4));
  EXPECT_FALSE(t.post_bos_id().has_value());
}

// Expectations from `tokenizers` 0.23 on the same file.
TEST(Tokenizer, AddedTokenSingleWordAndStrip) {
  sf::test::TempDir tmp("tok-single-word");
  json j = tiny();
  j["model"]["vocab"]["\xC4\xA0"] = 6;  // "Ġ", the byte-level space
  j["model"]["vocab"]["cc"] = 7;
  j["added_tokens"].push_back({{"id", 7},
                               {"content", "cc"},
                               {"special", false},
                               {"lstrip", true},
                               {"rstrip", true},
                               {"single_word", true},
                               {"normalized", false}});
  const Tokenizer t = load(j, tmp);
  using V = std::vector<int32_t>;
  EXPECT_EQ(t.encode("cc"), (V{7}));
  EXPECT_EQ(t.encode("acc"), (V{0, 2, 2}));
  EXPECT_EQ(t.encode("a cc b"), (V{0, 7, 1}));
  EXPECT_EQ(t.encode("a  cc  b"), (V{0, 7, 1}));
  EXPECT_EQ(t.encode("cc\u0301"), (V{2, 2}));
  EXPECT_EQ(t.encode("_cc"), (V{2, 2}));
  EXPECT_EQ(t.encode("a\u200D"
                     "cc"),
            (V{0, 2, 2}));
}

TEST(Tokenizer, UnknownComponentsAreFormatErrorsNamingThem) {
  json j = tiny();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(format_error(j).find("pre_tokenizer.type=Whitespace is not supported"), std::string::npos);
  j = tiny();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Punctuation"}}})}};
  EXPECT_NE(format_error(j).find("pre_tokenizer.pretokenizers[0].type=Punctuation"), std::string::npos);
  j = tiny();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  EXPECT_NE(format_error(j).find("normalizer.type=BertNormalizer"), std::string::npos);
  j = tiny();
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(format_error(j).find("decoder.type=WordPiece"), std::string::npos);
  j = tiny();
  j["model"]["type"] = "Unigram";
  EXPECT_NE(format_error(j).find("model.type=Unigram"), std::string::npos);
  j = tiny();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(format_error(j).find("pre_tokenizer.pattern.Regex=\\w+ is not supported"), std::string::npos);
  j = tiny();
  j["model"]["merges"] = json::array({"a z"});
  EXPECT_NE(format_error(j).find("model.merges[0]: token 'z' out of vocabulary"), std::string::npos);
  j = tiny();
  j["model"].erase("vocab");
  EXPECT_NE(format_error(j).find("model.vocab: required key is missing"), std::string::npos);
}

TEST(Tokenizer, MalformedJsonAndMissingFile) {
  sf::test::TempDir tmp("tok-bad");
  sf::test::write_file(tmp / "tokenizer.json", "{\"model\": {\"vocab\": [1, 2");
  try {
    Tokenizer::from_file(tmp / "tokenizer.json");
    FAIL() << "expected FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: malformed JSON at byte"), std::string::npos) << e.what();
  }
  // A number the parser cannot hold (found by the safetensors fuzz target in a header): the same.
  sf::test::write_file(tmp / "tokenizer.json",
                       R"({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 1E400}}})");
  try {
    Tokenizer::from_file(tmp / "tokenizer.json");
    FAIL() << "expected FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: malformed JSON: "), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_file(tmp / "missing.json"), sf::IoError);
}

TEST(Tokenizer, LegacyFileWithoutModelTypeIsBpe) {
  sf::test::TempDir tmp("tok-legacy");
  json j = tiny();
  j["model"].erase("type");
  EXPECT_EQ(load(j, tmp).encode("abc"), (std::vector<int32_t>{4}));
}

TEST(Tokenizer, IdOutOfRangeIsShapeError) {
  const Tokenizer t = Tokenizer::from_file(model_file("meta-llama--Llama-2-7b-hf"));
  EXPECT_THROW(t.decode({1, 32000}), sf::ShapeError);
  EXPECT_THROW(t.decode({-1}), sf::ShapeError);
  EXPECT_THROW(t.id_to_token(40000), sf::ShapeError);
  EXPECT_EQ(t.id_to_token(1), "<s>");
}

TEST(Tokenizer, PostProcessorAndMetadata) {
  const Tokenizer llama = Tokenizer::from_file(model_file("meta-llama--Llama-2-7b-hf"));
  EXPECT_EQ(llama.post_bos_id(), 1);
  EXPECT_FALSE(llama.post_eos_id().has_value());
  EXPECT_EQ(llama.vocab_size(), 32000);
  EXPECT_EQ(llama.content_hash(), sf::sha256_file(model_file("meta-llama--Llama-2-7b-hf")));
  EXPECT_EQ(llama.encode("Hello", true), (std::vector<int32_t>{1, 15043}));
  const Tokenizer smol = Tokenizer::from_file(model_file("HuggingFaceTB--SmolLM2-135M-Instruct"));
  EXPECT_FALSE(smol.post_bos_id().has_value());
  EXPECT_EQ(smol.vocab_size(), 49152);
  EXPECT_EQ(smol.token_to_id("<|im_end|>"), 2);
}

// Streaming returns only whole characters and, concatenated, equals the full decode.
TEST(StreamDecoder, HoldsBackPartialUtf8) {
  const std::string text = "Hi 日本語 😀👍🏽 done";
  for (const char* folder : {"meta-llama--Llama-2-7b-hf", "HuggingFaceTB--SmolLM2-135M-Instruct"}) {
    SCOPED_TRACE(folder);
    const Tokenizer t = Tokenizer::from_file(model_file(folder));
    const auto ids = t.encode(text, true);
    sf::tok::StreamDecoder s(t, true);
    std::string joined;
    for (int32_t id : ids) {
      const std::string piece = s.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
      joined += piece;
    }
    joined += s.flush();
    EXPECT_EQ(joined, t.decode(ids, true));
    EXPECT_EQ(joined, text);
  }
}

TEST(PreTokenizer, LossyUtf8DecodingUsesMaximalSubparts) {
  // E4 BD is a truncated 3-byte sequence: one U+FFFD; C0 and a lone continuation byte: one each.
  const auto chars = sf::tok::detail::decode_utf8(
      "\xE4\xBD"
      "A\xC0\x80");
  ASSERT_EQ(chars.size(), 4u);
  EXPECT_EQ(chars[0].cp, 0xFFFDu);
  EXPECT_EQ(chars[0].end, 2u);
  EXPECT_EQ(chars[1].cp, static_cast<char32_t>('A'));
  EXPECT_EQ(chars[2].cls, sf::tok::detail::kInvalid);
  EXPECT_EQ(chars[3].cls, sf::tok::detail::kInvalid);
}

TEST(PreTokenizer, Gpt2AndLlama3RegexPieces) {
  namespace d = sf::tok::detail;
  auto pieces = [](d::Pattern p, const std::string& s) {
    std::vector<std::string> out;
    for (const auto& [b, e] : d::regex_matches(p, s)) out.push_back(s.substr(b, e - b));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(d::Pattern::kGpt2, "I'LL go  now 12345!?\n\n x"),
            (V{"I", "'", "LL", " go", " ", " now", " 12345", "!?", "\n\n", " x"}));
  EXPECT_EQ(pieces(d::Pattern::kLlama3, "I'LL go  now 12345!?\n\n x"),
            (V{"I", "'LL", " go", " ", " now", " ", "123", "45", "!?\n\n", " x"}));
  EXPECT_EQ(pieces(d::Pattern::kQwen2, "ab 12\t\n  c"), (V{"ab", " ", "1", "2", "\t\n", " ", " c"}));
}

}  // namespace
