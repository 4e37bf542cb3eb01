#include "tokenizer/gguf_tokenizer.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "core/error.hpp"
#include "tokenizer/pretokenizer.hpp"

namespace sf::tok {

namespace {

using nlohmann::json;

// llama.cpp token types (llama_token_type).
constexpr int64_t kUnknown = 2, kControl = 3, kUserDefined = 4;

// The pre-tokenizers of llama.cpp's `tokenizer.ggml.pre` names (llama-vocab.cpp) that a
// tokenizer.json can express exactly.
enum class Pre { kGpt2, kDigitsGpt2, kLlama3, kQwen2 };
const std::map<std::string, Pre> kPreTokenizers = {
    {"gpt-2", Pre::kGpt2},        {"smollm", Pre::kDigitsGpt2}, {"starcoder", Pre::kDigitsGpt2},
    {"refact", Pre::kDigitsGpt2}, {"llama-bpe", Pre::kLlama3},  {"llama3", Pre::kLlama3},
    {"llama-v3", Pre::kLlama3},   {"qwen2", Pre::kQwen2},       {"deepseek-r1-qwen", Pre::kQwen2},
};

// Keys of the tokenizer namespace read here or known not to change tokenization.
const std::set<std::string> kKnownKeys = {
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.token_type_count",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
    "tokenizer.ggml.separator_token_id",
    "tokenizer.ggml.cls_token_id",
    "tokenizer.ggml.mask_token_id",
    "tokenizer.ggml.prefix_token_id",
    "tokenizer.ggml.suffix_token_id",
    "tokenizer.ggml.middle_token_id",
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
    "tokenizer.chat_template",
    "tokenizer.huggingface.json",
};

struct Reader {
  const io::GgufFile& file;
  std::string where(const std::string& key) const { return file.path().string() + ": metadata '" + key + "'"; }
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw FormatError(where(key) + ": " + msg);
  }
  bool flag(const std::string& key, bool fallback) const { return file.find(key) ? file.get_bool(key) : fallback; }
  // A token id that must name one of the `n` tokens.
  std::optional<int32_t> token_id(const std::string& key, size_t n) const {
    if (!file.find(key)) return std::nullopt;
    const uint64_t id = file.get_uint(key);
    if (id >= n) fail(key, "token id " + std::to_string(id) + " is outside the " + std::to_string(n) + " tokens");
    return static_cast<int32_t>(id);
  }
};

// Code point boundaries of a UTF-8 string (byte offsets, excluding 0 and the end).
std::vector<size_t> char_boundaries(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  }
  return out;
}

size_t char_count(const std::string& s) { return char_boundaries(s).size() + (s.empty() ? 0 : 1); }

// SentencePiece merges recovered from the vocabulary, as transformers' generate_merges(vocab,
// vocab_scores): every split of a token into two tokens, ordered by the token's score (then the
// longer left and right parts), ties in vocabulary order.
json spm_merges(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                const std::unordered_map<std::string, int32_t>& vocab) {
  struct Merge {
    double score;
    size_t left_chars, right_chars;
    int32_t left, right;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    std::vector<Merge> local;
    for (size_t cut : char_boundaries(t)) {
      auto l = vocab.find(t.substr(0, cut)), r = vocab.find(t.substr(cut));
      if (l == vocab.end() || r == vocab.end()) continue;
      local.push_back({scores[i], char_count(l->first), char_count(r->first), l->second, r->second});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tie(a.score, a.left_chars, a.right_chars) > std::tie(b.score, b.left_chars, b.right_chars);
  });
  json out = json::array();
  for (const Merge& m : merges) {
    out.push_back(json::array({tokens[static_cast<size_t>(m.left)], tokens[static_cast<size_t>(m.right)]}));
  }
  return out;
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json split(const char* regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

// BOS/EOS around the text, as Llama's tokenizer.json writes it (the pair template repeats it for
// the second sequence).
json template_processing(std::optional<int32_t> bos, std::optional<int32_t> eos,
                         const std::vector<std::string>& tokens) {
  json specials = json::object();
  auto special = [&](int32_t id, int type_id) {
    const std::string& t = tokens[static_cast<size_t>(id)];
    specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
    return json{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  auto sequence = [&](const char* name, int type_id) {
    json out = json::array();
    if (bos) out.push_back(special(*bos, type_id));
    out.push_back({{"Sequence", {{"id", name}, {"type_id", type_id}}}});
    if (eos) out.push_back(special(*eos, type_id));
    return out;
  };
  json pair = sequence("A", 0);
  for (auto& item : sequence("B", 1)) pair.push_back(item);
  return {{"type", "TemplateProcessing"}, {"single", sequence("A", 0)}, {"pair", pair}, {"special_tokens", specials}};
}

}  // namespace

bool gguf_has_tokenizer(const io::GgufFile& file) {
  return file.find("tokenizer.ggml.model") || file.find("tokenizer.huggingface.json");
}

std::string gguf_tokenizer_json(const io::GgufFile& file) {
  const Reader r{file};
  if (file.find("tokenizer.huggingface.json")) return file.get_string("tokenizer.huggingface.json");
  for (const auto& [key, value] : file.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0 && !kKnownKeys.count(key) && key.rfind("tokenizer.chat_template.", 0) != 0) {
      r.fail(key, "unknown or unsupported tokenizer key");
    }
  }
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2" && model != "llama") {
    r.fail("tokenizer.ggml.model", "'" + model + "' is not supported (gpt2, llama)");
  }
  const bool spm = model == "llama";
  const std::vector<std::string> tokens = file.get_strings("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  if (n == 0) r.fail("tokenizer.ggml.tokens", "no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) r.fail("tokenizer.ggml.tokens", "too many tokens");
  std::vector<int64_t> types(n, 1);
  if (file.find("tokenizer.ggml.token_type")) {
    types = file.get_ints("tokenizer.ggml.token_type");
    if (types.size() != n) {
      r.fail("tokenizer.ggml.token_type", std::to_string(types.size()) + " types for " + std::to_string(n) + " tokens");
    }
  }
  std::unordered_map<std::string, int32_t> vocab_ids;
  json vocab = json::object();
  for (size_t i = 0; i < n; ++i) {
    if (!vocab_ids.emplace(tokens[i], static_cast<int32_t>(i)).second) {
      r.fail("tokenizer.ggml.tokens", "token " + std::to_string(i) + " repeats token " +
                                          std::to_string(vocab_ids[tokens[i]]) + " ('" + tokens[i] + "')");
    }
    vocab[tokens[i]] = static_cast<int32_t>(i);
  }
  json added = json::array();
  for (size_t i = 0; i < n; ++i) {
    if (types[i] != kUnknown && types[i] != kControl && types[i] != kUserDefined) continue;
    if (tokens[i].empty()) continue;  // never matchable in text
    added.push_back({{"id", static_cast<int32_t>(i)},
                     {"content", tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", types[i] != kUserDefined}});
  }
  // llama.cpp's defaults for a SentencePiece vocabulary without the keys: <unk> 0, <s> 1, </s> 2.
  auto id_or = [&](const std::string& key, int32_t spm_default) -> std::optional<int32_t> {
    if (const auto id = r.token_id(key, n)) return id;
    if (spm && static_cast<size_t>(spm_default) < n) return spm_default;
    return std::nullopt;
  };
  const auto bos = id_or("tokenizer.ggml.bos_token_id", 1);
  const auto eos = id_or("tokenizer.ggml.eos_token_id", 2);

  json doc = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  json bpe = {{"type", "BPE"},
              {"dropout", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"vocab", vocab},
              {"end_of_word_suffix", nullptr}};
  bool add_bos = false;
  if (spm) {
    if (file.find("tokenizer.ggml.merges")) r.fail("tokenizer.ggml.merges", "merges in a 'llama' vocabulary");
    const std::vector<double> scores = file.get_floats("tokenizer.ggml.scores");
    if (scores.size() != n) {
      r.fail("tokenizer.ggml.scores", std::to_string(scores.size()) + " scores for " + std::to_string(n) + " tokens");
    }
    std::optional<int32_t> unk = r.token_id("tokenizer.ggml.unknown_token_id", n);
    for (size_t i = 0; i < n && !unk; ++i) {
      if (types[i] == kUnknown) unk = static_cast<int32_t>(i);
    }
    if (!unk) unk = 0;  // llama.cpp's default
    bpe["merges"] = spm_merges(tokens, scores, vocab_ids);
    bpe["unk_token"] = tokens[static_cast<size_t>(*unk)];
    bpe["fuse_unk"] = true;
    bpe["byte_fallback"] = true;
    bpe["ignore_merges"] = false;
    const bool prefix = r.flag("tokenizer.ggml.add_space_prefix", true);
    json norms = json::array();
    if (prefix) norms.push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
    norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}});
    doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", norms}};
    doc["pre_tokenizer"] = nullptr;
    json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                 {{"type", "ByteFallback"}},
                                 {{"type", "Fuse"}}});
    if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    doc["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    add_bos = true;  // llama.cpp's default for SentencePiece vocabularies
  } else {
    if (r.flag("tokenizer.ggml.add_space_prefix", false)) {
      r.fail("tokenizer.ggml.add_space_prefix", "true is not supported for a 'gpt2' vocabulary");
    }
    if (!file.find("tokenizer.ggml.pre")) {
      r.fail("tokenizer.ggml.pre",
             "is missing (a file converted before llama.cpp named pre-tokenizers); put the "
             "model's tokenizer.json beside the file");
    }
    const std::string pre_name = file.get_string("tokenizer.ggml.pre");
    auto it = kPreTokenizers.find(pre_name);
    if (it == kPreTokenizers.end()) {
      std::string known;
      for (const auto& [name, p] : kPreTokenizers) known += (known.empty() ? "" : ", ") + name;
      r.fail("tokenizer.ggml.pre", "'" + pre_name + "' is not supported (" + known + ")");
    }
    const Pre pre = it->second;
    json merges = json::array();
    for (const std::string& m : file.get_strings("tokenizer.ggml.merges")) merges.push_back(m);
    bpe["merges"] = merges;
    bpe["unk_token"] = nullptr;
    bpe["fuse_unk"] = false;
    bpe["byte_fallback"] = false;
    bpe["ignore_merges"] = pre == Pre::kLlama3;  // llama.cpp, and Llama-3's tokenizer.json
    doc["normalizer"] = pre == Pre::kQwen2 ? json{{"type", "NFC"}} : json(nullptr);  // as Qwen2's tokenizer.json
    switch (pre) {
      case Pre::kGpt2:
        doc["pre_tokenizer"] = byte_level(true);
        break;
      case Pre::kDigitsGpt2:
        doc["pre_tokenizer"] = {
            {"type", "Sequence"},
            {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)})}};
        break;
      case Pre::kLlama3:
      case Pre::kQwen2:
        doc["pre_tokenizer"] = {
            {"type", "Sequence"},
            {"pretokenizers", json::array({split(pre == Pre::kLlama3 ? detail::kLlama3Regex : detail::kQwen2Regex),
                                           byte_level(false)})}};
        break;
    }
    doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    add_bos = pre == Pre::kLlama3;  // llama.cpp's default for the llama3 family
  }
  add_bos = r.flag("tokenizer.ggml.add_bos_token", add_bos);
  const bool add_eos = r.flag("tokenizer.ggml.add_eos_token", false);
  if (add_bos && !bos) r.fail("tokenizer.ggml.add_bos_token", "true without tokenizer.ggml.bos_token_id");
  if (add_eos && !eos) r.fail("tokenizer.ggml.add_eos_token", "true without tokenizer.ggml.eos_token_id");
  doc["post_processor"] = add_bos || add_eos
                              ? template_processing(add_bos ? bos : std::nullopt, add_eos ? eos : std::nullopt, tokens)
                              : json(nullptr);
  doc["model"] = bpe;
  try {
    return doc.dump();
  } catch (const json::type_error&) {
    throw FormatError(file.path().string() + ": metadata 'tokenizer.ggml.tokens': a token is not valid UTF-8");
  }
}

}  // namespace sf::tok
