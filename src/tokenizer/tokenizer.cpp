// Hugging Face tokenizer.json, reimplemented step by step after the `tokenizers` crate:
// added tokens -> normalizer -> pre-tokenizer -> BPE model -> post-processor, and the decoder chain.
#include "tokenizer/tokenizer.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "tokenizer/pretokenizer.hpp"

namespace sf::tok {

namespace {

using nlohmann::json;
namespace d = detail;

// ---------------------------------------------------------------------------------------------
// JSON helpers: every error names the file and the key path.

struct Src {
  std::string file;
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw FormatError(file + ": " + key + ": " + msg);
  }
  const json& at(const json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object");
    auto it = j.find(key);
    if (it == j.end()) fail(path + "." + key, "required key is missing");
    return *it;
  }
  std::string str(const json& j, const std::string& key, const std::string& path) const {
    const json& v = at(j, key, path);
    if (!v.is_string()) fail(path + "." + key, "expected a string");
    return v.get<std::string>();
  }
  bool flag(const json& j, const std::string& key, const std::string& path, bool fallback) const {
    if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
    if (!j.at(key).is_boolean()) fail(path + "." + key, "expected a boolean");
    return j.at(key).get<bool>();
  }
  int64_t integer(const json& j, const std::string& path) const {
    if (!j.is_number_integer()) fail(path, "expected an integer");
    return j.get<int64_t>();
  }
  std::string type(const json& j, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object");
    return str(j, "type", path);
  }
  [[noreturn]] void unsupported(const std::string& path, const std::string& what) const {
    throw FormatError(file + ": " + path + "=" + what + " is not supported");
  }
};

// A `pattern` object: {"String": s} or {"Regex": r}. Returns true for a regex.
bool read_pattern(const Src& src, const json& j, const std::string& path, std::string* out) {
  if (j.is_object() && j.contains("String") && j.at("String").is_string()) {
    *out = j.at("String").get<std::string>();
    return false;
  }
  if (j.is_object() && j.contains("Regex") && j.at("Regex").is_string()) {
    *out = j.at("Regex").get<std::string>();
    return true;
  }
  src.fail(path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

// ---------------------------------------------------------------------------------------------
// Pipeline steps

enum class Prepend { kAlways, kFirst, kNever };

Prepend read_prepend_scheme(const Src& src, const json& j, const std::string& path) {
  if (!j.contains("prepend_scheme")) {
    // Files older than prepend_scheme carry add_prefix_space instead.
    return src.flag(j, "add_prefix_space", path, true) ? Prepend::kAlways : Prepend::kNever;
  }
  const std::string s = src.str(j, "prepend_scheme", path);
  if (s == "always") return Prepend::kAlways;
  if (s == "first") return Prepend::kFirst;
  if (s == "never") return Prepend::kNever;
  src.unsupported(path + ".prepend_scheme", s);
}

struct NormStep {
  enum Kind { kPrepend, kReplace, kNfc, kNfd, kNfkc, kNfkd } kind;
  std::string a, b;  // prepend text / replace pattern and content
};

struct PreStep {
  enum Kind { kByteLevel, kDigits, kSplit, kMetaspace } kind = kByteLevel;
  bool add_prefix_space = false;
  bool use_regex = true;
  bool individual_digits = false;
  bool is_regex = false;
  d::Pattern pattern = d::Pattern::kGpt2;
  std::string text;  // Split string pattern / Metaspace replacement
  d::Behavior behavior = d::Behavior::kIsolated;
  bool invert = false;
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

struct DecStep {
  enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind = kByteLevel;
  std::string a, b;  // replace pattern/content; strip content; metaspace replacement
  size_t start = 0, stop = 0;
  Prepend prepend = Prepend::kAlways;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

// Byte trie over added-token contents for leftmost-longest matching.
class Trie {
 public:
  void insert(const std::string& s, int32_t token) {
    first_[static_cast<unsigned char>(s[0])] = true;
    size_t node = 0;
    for (unsigned char c : s) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        it = edges_.emplace(key, terminal_.size()).first;
        terminal_.push_back(-1);
      }
      node = it->second;
    }
    terminal_[node] = token;
  }
  bool empty() const { return terminal_.size() == 1; }
  // Longest entry starting at `pos`: its index and length, or -1.
  int32_t longest(std::string_view s, size_t pos, size_t* len) const {
    if (!first_[static_cast<unsigned char>(s[pos])]) return -1;
    size_t node = 0;
    int32_t best = -1;
    for (size_t i = pos; i < s.size(); ++i) {
      auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(s[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        *len = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  std::array<bool, 256> first_{};  // bytes that start an entry
  std::unordered_map<uint64_t, size_t> edges_;
  std::vector<int32_t> terminal_{-1};
};

// Merge ranks by token-id pair: an open-addressing table (the BPE loop's hot lookup).
class PairMap {
 public:
  struct Value {
    int32_t rank;
    int32_t merged;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    shift_ = 60;
    while (cap < 2 * n) cap <<= 1, --shift_;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Value{0, 0});
    mask_ = cap - 1;
  }
  // Inserts or overwrites (a later duplicate merge wins, as in HF).
  void set(int32_t a, int32_t b, Value v) {
    size_t i = slot(key(a, b));
    keys_[i] = key(a, b);
    values_[i] = v;
  }
  const Value* find(int32_t a, int32_t b) const {
    const size_t i = slot(key(a, b));
    return keys_[i] == kEmpty ? nullptr : &values_[i];
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
  size_t slot(uint64_t k) const {
    size_t i = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    return i;
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
  int shift_ = 60;  // 64 - log2(capacity): the product's high bits pick the slot
};

// Words up to this many bytes are cached (longer ones are rare and seldom repeat).
constexpr size_t kMaxCachedWord = 128;

// A piece of text on its way through the pipeline: either an added token or text, with whether it
// starts at offset 0 of the original input (Metaspace prepend_scheme "first").
struct Piece {
  std::string text;
  bool at_start;
};

std::string replace_all(std::string_view s, const std::string& from, const std::string& to) {
  if (from.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (size_t at = s.find(from); at != std::string_view::npos; at = s.find(from, prev)) {
    out.append(s.substr(prev, at - prev));
    out += to;
    prev = at + from.size();
  }
  out.append(s.substr(prev));
  return out;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::filesystem::path path;
  std::string hash;

  // model (BPE)
  std::unordered_map<std::string, int32_t> vocab;
  PairMap merges;  // (a,b) -> (rank, merged id)
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::array<int32_t, 256> byte_ids{};               // <0xNN> tokens, -1 when absent
  std::vector<int32_t> bmp_ids;                      // single-character tokens below U+10000, -1 when absent
  std::unordered_map<char32_t, int32_t> astral_ids;  // single-character tokens above

  std::vector<std::optional<std::string>> id_to_text;  // added tokens override the model's
  std::vector<bool> special;
  std::vector<AddedToken> added;
  Trie raw_trie, normalized_trie;

  std::vector<NormStep> normalizers;
  std::vector<PreStep> pre_tokenizers;
  std::vector<DecStep> decoders;
  bool has_decoder = false;
  std::vector<int32_t> post_prefix, post_suffix;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void load(const json& root, const Src& src);
  void load_model(const json& m, const Src& src);
  void load_normalizer(const json& j, const Src& src, const std::string& path);
  void load_pre_tokenizer(const json& j, const Src& src, const std::string& path);
  void load_decoder(const json& j, const Src& src, const std::string& path);
  void load_post_processor(const json& j, const Src& src, const std::string& path);

  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  // Splits on added tokens (HF AddedVocabulary::find_matches); token pieces have id >= 0.
  std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> find_added(std::string_view s, const Trie& trie) const;
  std::string normalize(std::string_view s) const;
  std::vector<Piece> pre_tokenize(Piece p) const;
  void bpe(const std::string& word, std::vector<int32_t>& out) const;
  void bpe_uncached(const std::string& word, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::load(const json& root, const Src& src) {
  if (!root.is_object()) src.fail("(root)", "expected a JSON object");
  load_model(src.at(root, "model", "(root)"), src);

  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab) max_id = std::max(max_id, id);
  std::vector<AddedToken> tokens;
  if (root.contains("added_tokens") && !root.at("added_tokens").is_null()) {
    const json& list = root.at("added_tokens");
    if (!list.is_array()) src.fail("added_tokens", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = "added_tokens[" + std::to_string(i) + "]";
      const json& t = list[i];
      const int64_t id = src.integer(src.at(t, "id", path), path + ".id");
      if (id < 0 || id > INT32_MAX - 1) src.fail(path + ".id", "out of range");
      tokens.push_back({static_cast<int32_t>(id), src.str(t, "content", path), src.flag(t, "special", path, false),
                        src.flag(t, "lstrip", path, false), src.flag(t, "rstrip", path, false),
                        src.flag(t, "single_word", path, false), src.flag(t, "normalized", path, true)});
      if (tokens.back().content.empty()) src.fail(path + ".content", "empty added token");
      max_id = std::max(max_id, tokens.back().id);
    }
  }
  id_to_text.assign(static_cast<size_t>(max_id + 1), std::nullopt);
  special.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [tok, id] : vocab) id_to_text[static_cast<size_t>(id)] = tok;
  for (const auto& t : tokens) {
    id_to_text[static_cast<size_t>(t.id)] = t.content;
    special[static_cast<size_t>(t.id)] = t.special;
    added.push_back(t);
  }

  if (root.contains("normalizer") && !root.at("normalizer").is_null()) {
    load_normalizer(root.at("normalizer"), src, "normalizer");
  }
  if (root.contains("pre_tokenizer") && !root.at("pre_tokenizer").is_null()) {
    load_pre_tokenizer(root.at("pre_tokenizer"), src, "pre_tokenizer");
  }
  if (root.contains("post_processor") && !root.at("post_processor").is_null()) {
    load_post_processor(root.at("post_processor"), src, "post_processor");
  }
  if (root.contains("decoder") && !root.at("decoder").is_null()) {
    has_decoder = true;
    load_decoder(root.at("decoder"), src, "decoder");
  }
  // As HF AddedVocabulary: tokens with normalized=false are matched in the raw text, the others in
  // the normalized text, by their normalized content.
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& t = added[i];
    if (t.normalized) {
      normalized_trie.insert(normalize(t.content), static_cast<int32_t>(i));
    } else {
      raw_trie.insert(t.content, static_cast<int32_t>(i));
    }
  }
}

void Tokenizer::Impl::load_model(const json& m, const Src& src) {
  if (!m.is_object()) src.fail("model", "expected an object");
  // The legacy format has no model.type; `tokenizers` then infers BPE from the presence of merges.
  const std::string type = m.contains("type") ? src.str(m, "type", "model") : (m.contains("merges") ? "BPE" : "");
  if (type != "BPE") src.unsupported("model.type", type.empty() ? "(missing)" : type);
  if (m.contains("dropout") && !m.at("dropout").is_null()) src.unsupported("model.dropout", m.at("dropout").dump());
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m.at(key).is_null() && m.at(key) != "") {
      src.unsupported(std::string("model.") + key, m.at(key).dump());
    }
  }
  const json& v = src.at(m, "vocab", "model");
  if (!v.is_object()) src.fail("model.vocab", "expected an object");
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    const int64_t id = src.integer(it.value(), "model.vocab[" + it.key() + "]");
    if (id < 0 || id > INT32_MAX - 1) src.fail("model.vocab[" + it.key() + "]", "id out of range");
    vocab[it.key()] = static_cast<int32_t>(id);
  }
  const json& ml = src.at(m, "merges", "model");
  if (!ml.is_array()) src.fail("model.merges", "expected an array");
  merges.reserve(ml.size());
  for (size_t i = 0; i < ml.size(); ++i) {
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    std::string a, b;
    if (ml[i].is_string()) {
      const std::string s = ml[i].get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) src.fail(path, "expected \"a b\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (ml[i].is_array() && ml[i].size() == 2 && ml[i][0].is_string() && ml[i][1].is_string()) {
      a = ml[i][0].get<std::string>();
      b = ml[i][1].get<std::string>();
    } else {
      src.fail(path, "expected \"a b\" or [a, b]");
    }
    auto id_of = [&](const std::string& t) {
      auto it = vocab.find(t);
      if (it == vocab.end()) src.fail(path, "token '" + t + "' out of vocabulary");
      return it->second;
    };
    const int32_t ia = id_of(a), ib = id_of(b), merged = id_of(a + b);
    merges.set(ia, ib, {static_cast<int32_t>(i), merged});
  }
  if (m.contains("unk_token") && !m.at("unk_token").is_null()) {
    const std::string unk = src.str(m, "unk_token", "model");
    auto it = vocab.find(unk);
    if (it == vocab.end()) src.fail("model.unk_token", "'" + unk + "' is not in the vocabulary");
    unk_id = it->second;
  }
  fuse_unk = src.flag(m, "fuse_unk", "model", false);
  byte_fallback = src.flag(m, "byte_fallback", "model", false);
  ignore_merges = src.flag(m, "ignore_merges", "model", false);
  bmp_ids.assign(0x10000, -1);
  for (const auto& [tok, id] : vocab) {
    const auto chars = d::decode_utf8(tok, false);
    if (chars.size() != 1 || chars[0].cls == d::kInvalid) continue;
    if (chars[0].cp < 0x10000) {
      bmp_ids[chars[0].cp] = id;
    } else {
      astral_ids[chars[0].cp] = id;
    }
  }
  byte_ids.fill(-1);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string t = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    auto it = vocab.find(t);
    if (it != vocab.end()) byte_ids[static_cast<size_t>(b)] = it->second;
  }
}

void Tokenizer::Impl::load_normalizer(const json& j, const Src& src, const std::string& path) {
  const std::string type = src.type(j, path);
  if (type == "Sequence") {
    const json& list = src.at(j, "normalizers", path);
    if (!list.is_array()) src.fail(path + ".normalizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      load_normalizer(list[i], src, path + ".normalizers[" + std::to_string(i) + "]");
    }
  } else if (type == "Prepend") {
    normalizers.push_back({NormStep::kPrepend, src.str(j, "prepend", path), ""});
  } else if (type == "Replace") {
    std::string pattern;
    if (read_pattern(src, src.at(j, "pattern", path), path + ".pattern", &pattern)) {
      src.unsupported(path + ".pattern.Regex", pattern);
    }
    normalizers.push_back({NormStep::kReplace, pattern, src.str(j, "content", path)});
  } else if (type == "NFC") {
    normalizers.push_back({NormStep::kNfc, "", ""});
  } else if (type == "NFD") {
    normalizers.push_back({NormStep::kNfd, "", ""});
  } else if (type == "NFKC") {
    normalizers.push_back({NormStep::kNfkc, "", ""});
  } else if (type == "NFKD") {
    normalizers.push_back({NormStep::kNfkd, "", ""});
  } else {
    src.unsupported(path + ".type", type);
  }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& j, const Src& src, const std::string& path) {
  const std::string type = src.type(j, path);
  PreStep s;
  if (type == "Sequence") {
    const json& list = src.at(j, "pretokenizers", path);
    if (!list.is_array()) src.fail(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      load_pre_tokenizer(list[i], src, path + ".pretokenizers[" + std::to_string(i) + "]");
    }
    return;
  } else if (type == "ByteLevel") {
    s.add_prefix_space = src.flag(j, "add_prefix_space", path, true);
    s.use_regex = src.flag(j, "use_regex", path, true);
  } else if (type == "Digits") {
    s.kind = PreStep::kDigits;
    s.individual_digits = src.flag(j, "individual_digits", path, false);
  } else if (type == "Split") {
    s.kind = PreStep::kSplit;
    std::string pattern;
    s.is_regex = read_pattern(src, src.at(j, "pattern", path), path + ".pattern", &pattern);
    if (s.is_regex && !d::known_pattern(pattern, &s.pattern)) src.unsupported(path + ".pattern.Regex", pattern);
    s.text = pattern;
    const std::string behavior = src.str(j, "behavior", path);
    if (behavior == "Removed") {
      s.behavior = d::Behavior::kRemoved;
    } else if (behavior == "Isolated") {
      s.behavior = d::Behavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      s.behavior = d::Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      s.behavior = d::Behavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      s.behavior = d::Behavior::kContiguous;
    } else {
      src.unsupported(path + ".behavior", behavior);
    }
    s.invert = src.flag(j, "invert", path, false);
  } else if (type == "Metaspace") {
    s.kind = PreStep::kMetaspace;
    s.text = src.str(j, "replacement", path);
    if (d::decode_utf8(s.text).size() != 1) src.fail(path + ".replacement", "expected one character");
    s.prepend = read_prepend_scheme(src, j, path);
    s.split = src.flag(j, "split", path, true);
  } else {
    src.unsupported(path + ".type", type);
  }
  pre_tokenizers.push_back(s);
}

void Tokenizer::Impl::load_decoder(const json& j, const Src& src, const std::string& path) {
  const std::string type = src.type(j, path);
  DecStep s;
  if (type == "Sequence") {
    const json& list = src.at(j, "decoders", path);
    if (!list.is_array()) src.fail(path + ".decoders", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) load_decoder(list[i], src, path + ".decoders[" + std::to_string(i) + "]");
    return;
  } else if (type == "ByteLevel") {
  } else if (type == "Replace") {
    s.kind = DecStep::kReplace;
    if (read_pattern(src, src.at(j, "pattern", path), path + ".pattern", &s.a)) {
      src.unsupported(path + ".pattern.Regex", s.a);
    }
    s.b = src.str(j, "content", path);
  } else if (type == "ByteFallback") {
    s.kind = DecStep::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = DecStep::kFuse;
  } else if (type == "Strip") {
    s.kind = DecStep::kStrip;
    s.a = src.str(j, "content", path);
    if (d::decode_utf8(s.a).size() != 1) src.fail(path + ".content", "expected one character");
    const int64_t start = src.integer(src.at(j, "start", path), path + ".start");
    const int64_t stop = src.integer(src.at(j, "stop", path), path + ".stop");
    if (start < 0 || stop < 0) src.fail(path, "start/stop must not be negative");
    s.start = static_cast<size_t>(start);
    s.stop = static_cast<size_t>(stop);
  } else if (type == "Metaspace") {
    s.kind = DecStep::kMetaspace;
    s.a = src.str(j, "replacement", path);
    s.prepend = read_prepend_scheme(src, j, path);
  } else {
    src.unsupported(path + ".type", type);
  }
  decoders.push_back(s);
}

void Tokenizer::Impl::load_post_processor(const json& j, const Src& src, const std::string& path) {
  const std::string type = src.type(j, path);
  auto id_of = [&](const std::string& token, const std::string& where) {
    auto it = vocab.find(token);
    for (const auto& t : added) {
      if (t.content == token) return t.id;
    }
    if (it == vocab.end()) src.fail(where, "token '" + token + "' is not in the vocabulary");
    return it->second;
  };
  if (type == "Sequence") {
    const json& list = src.at(j, "processors", path);
    if (!list.is_array()) src.fail(path + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      load_post_processor(list[i], src, path + ".processors[" + std::to_string(i) + "]");
    }
  } else if (type == "ByteLevel") {
    // Adjusts offsets only; adds no ids.
  } else if (type == "TemplateProcessing") {
    const json& single = src.at(j, "single", path);
    const json& specials = src.at(j, "special_tokens", path);
    if (!single.is_array()) src.fail(path + ".single", "expected an array");
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string where = path + ".single[" + std::to_string(i) + "]";
      const json& item = single[i];
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_sequence) src.fail(where, "more than one Sequence");
        seen_sequence = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const std::string name = src.str(item.at("SpecialToken"), "id", where + ".SpecialToken");
        const json& entry = src.at(specials, name, path + ".special_tokens");
        const json& ids = src.at(entry, "ids", path + ".special_tokens." + name);
        if (!ids.is_array()) src.fail(path + ".special_tokens." + name + ".ids", "expected an array");
        for (const auto& id : ids) {
          const int64_t v = src.integer(id, path + ".special_tokens." + name + ".ids");
          if (v < 0 || v > INT32_MAX) src.fail(path + ".special_tokens." + name + ".ids", "out of range");
          (seen_sequence ? post_suffix : post_prefix).push_back(static_cast<int32_t>(v));
        }
      } else {
        src.fail(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    if (!seen_sequence) src.fail(path + ".single", "no Sequence");
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const json& pair = src.at(j, key, path);
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string()) {
        src.fail(path + "." + key, "expected [token, id]");
      }
      const int32_t id = id_of(pair[0].get<std::string>(), path + "." + key);
      (std::string(key) == "cls" ? post_prefix : post_suffix).push_back(id);
    }
  } else {
    src.unsupported(path + ".type", type);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> Tokenizer::Impl::find_added(std::string_view s,
                                                                                       const Trie& trie) const {
  std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> out;
  size_t start_offset = 0;
  if (!trie.empty()) {
    size_t pos = 0;
    while (pos < s.size()) {
      size_t len = 0;
      const int32_t k = trie.longest(s, pos, &len);
      if (k < 0) {
        ++pos;
        continue;
      }
      const AddedToken& t = added[static_cast<size_t>(k)];
      size_t start = pos, stop = pos + len;
      pos = stop;
      if (t.single_word) {
        const auto before = d::decode_utf8(s.substr(0, start));
        const auto after = d::decode_utf8(s.substr(stop, 4));
        const bool word_before = !before.empty() && d::is_word_char(before.back().cp);
        const bool word_after = !after.empty() && d::is_word_char(after.front().cp);
        if (word_before || word_after) continue;
      }
      if (t.lstrip) {
        const auto before = d::decode_utf8(s.substr(start_offset, start - start_offset));
        size_t b = before.size();
        while (b > 0 && d::is_whitespace(before[b - 1].cp)) --b;
        start = start_offset + (b == 0 ? 0 : before[b - 1].end);
      }
      if (t.rstrip) {
        const auto after = d::decode_utf8(s.substr(stop));
        size_t a = 0;
        while (a < after.size() && d::is_whitespace(after[a].cp)) ++a;
        stop += a == after.size() ? s.size() - stop : after[a].begin;
      }
      if (start_offset < start) out.push_back({-1, {start_offset, start}});
      out.push_back({t.id, {start, stop}});
      start_offset = stop;
    }
  }
  if (start_offset < s.size() || s.empty()) out.push_back({-1, {start_offset, s.size()}});
  return out;
}

std::string Tokenizer::Impl::normalize(std::string_view s) const {
  std::string out(s);
  for (const auto& n : normalizers) {
    switch (n.kind) {
      case NormStep::kPrepend:
        if (!out.empty()) out = n.a + out;
        break;
      case NormStep::kReplace:
        out = replace_all(out, n.a, n.b);
        break;
      default: {
        // utf8proc_NFC & co. with an explicit length, so that NUL characters survive.
        const int options =
            UTF8PROC_STABLE |
            (n.kind == NormStep::kNfc || n.kind == NormStep::kNfkc ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
            (n.kind == NormStep::kNfkc || n.kind == NormStep::kNfkd ? UTF8PROC_COMPAT : 0);
        utf8proc_uint8_t* r = nullptr;
        const utf8proc_ssize_t len =
            utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(out.data()),
                         static_cast<utf8proc_ssize_t>(out.size()), &r, static_cast<utf8proc_option_t>(options));
        if (len >= 0) out.assign(reinterpret_cast<const char*>(r), static_cast<size_t>(len));
        std::free(r);
      }
    }
  }
  return out;
}

std::vector<Piece> Tokenizer::Impl::pre_tokenize(Piece p) const {
  std::vector<Piece> pieces{std::move(p)};
  std::vector<Piece> next;
  for (const auto& step : pre_tokenizers) {
    next.clear();
    for (auto& piece : pieces) {
      std::string& t = piece.text;
      d::Matches ranges;
      switch (step.kind) {
        case PreStep::kByteLevel: {
          if (step.add_prefix_space && !starts_with(t, " ")) t.insert(0, " ");
          ranges = step.use_regex
                       ? d::split(t.size(), d::regex_matches(d::Pattern::kGpt2, t), d::Behavior::kIsolated, false)
                       : d::Matches{{0, t.size()}};
          break;
        }
        case PreStep::kDigits: {
          d::Matches digits;
          for (const auto& c : d::decode_utf8(t)) {
            if (c.cls & d::kNumber) digits.emplace_back(c.begin, c.end);
          }
          ranges = d::split(t.size(), digits,
                            step.individual_digits ? d::Behavior::kIsolated : d::Behavior::kContiguous, false);
          break;
        }
        case PreStep::kSplit:
          ranges =
              d::split(t.size(), step.is_regex ? d::regex_matches(step.pattern, t) : d::string_matches(step.text, t),
                       step.behavior, step.invert);
          break;
        case PreStep::kMetaspace: {
          t = replace_all(t, " ", step.text);
          const bool prepend = step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && piece.at_start);
          if (prepend && !t.empty() && !starts_with(t, step.text)) t.insert(0, step.text);
          ranges = step.split ? d::split(t.size(), d::string_matches(step.text, t), d::Behavior::kMergedWithNext, false)
                              : d::Matches{{0, t.size()}};
          break;
        }
      }
      for (const auto& [b, e] : ranges) {
        if (e <= b) continue;
        Piece out{t.substr(b, e - b), piece.at_start && b == 0};
        if (step.kind == PreStep::kByteLevel) {
          static const std::array<std::string, 256> kMapped = [] {
            std::array<std::string, 256> m;
            for (int c = 0; c < 256; ++c) d::append_utf8(m[c], d::byte_to_unicode(static_cast<uint8_t>(c)));
            return m;
          }();
          std::string mapped;
          mapped.reserve(out.text.size() * 2);
          for (unsigned char c : out.text) mapped += kMapped[c];
          out.text = std::move(mapped);
        }
        next.push_back(std::move(out));
      }
    }
    std::swap(pieces, next);
  }
  return pieces;
}

void Tokenizer::Impl::bpe(const std::string& word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxCachedWord) {
    bpe_uncached(word, out);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  bpe_uncached(word, out);
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() >= 100000) cache.clear();
  cache.emplace(word, std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
}

void Tokenizer::Impl::bpe_uncached(const std::string& word, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per character (byte fallback / unk for characters not in the vocabulary).
  std::vector<int32_t> ids;
  std::optional<int32_t> pending_unk;
  for (const auto& c : d::decode_utf8(word, false)) {
    int32_t id = -1;
    if (c.cls != d::kInvalid) {
      if (c.cp < 0x10000) {
        id = bmp_ids[c.cp];
      } else if (auto it = astral_ids.find(c.cp); it != astral_ids.end()) {
        id = it->second;
      }
    }
    if (id >= 0) {
      if (pending_unk) ids.push_back(*pending_unk);
      pending_unk.reset();
      ids.push_back(id);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (size_t b = c.begin; b < c.end; ++b) all = all && byte_ids[static_cast<unsigned char>(word[b])] >= 0;
      if (all) {
        for (size_t b = c.begin; b < c.end; ++b) ids.push_back(byte_ids[static_cast<unsigned char>(word[b])]);
        continue;
      }
    }
    if (unk_id) {
      if (pending_unk && !fuse_unk) ids.push_back(*pending_unk);
      pending_unk = unk_id;
    }
  }
  if (pending_unk) ids.push_back(*pending_unk);

  // Merge loop: lowest rank first, leftmost on ties; stale queue entries are skipped.
  struct Merge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = static_cast<int32_t>(ids.size());
  std::vector<int32_t> prev(ids.size()), next(ids.size());
  std::vector<bool> alive(ids.size(), true);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto find = [&](int32_t a, int32_t b) { return merges.find(ids[a], ids[b]); };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = find(i, i + 1)) queue.push({m->rank, i, m->merged});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int32_t right = next[top.pos];
    const auto* m = find(top.pos, right);
    if (!m || m->merged != top.new_id) continue;
    ids[top.pos] = top.new_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) {
      if (const auto* pm = find(prev[top.pos], top.pos)) queue.push({pm->rank, prev[top.pos], pm->merged});
    }
    if (next[top.pos] >= 0) {
      if (const auto* nm = find(top.pos, next[top.pos])) queue.push({nm->rank, top.pos, nm->merged});
    }
  }
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) out.push_back(ids[i]);
  }
}

void Tokenizer::Impl::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  for (const auto& [id, range] : find_added(text, raw_trie)) {
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    const std::string normalized = normalize(text.substr(range.first, range.second - range.first));
    for (const auto& [nid, nrange] : find_added(normalized, normalized_trie)) {
      if (nid >= 0) {
        out.push_back(nid);
        continue;
      }
      if (nrange.second == nrange.first) continue;
      Piece p{normalized.substr(nrange.first, nrange.second - nrange.first), range.first == 0 && nrange.first == 0};
      for (const auto& piece : pre_tokenize(std::move(p))) bpe(piece.text, out);
    }
  }
}

// ---------------------------------------------------------------------------------------------

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  std::ifstream in(tokenizer_json, std::ios::binary);
  if (!in) throw IoError(tokenizer_json.string() + ": cannot open tokenizer file");
  std::stringstream buf;
  buf << in.rdbuf();
  return from_json_text(buf.str(), tokenizer_json);
}

Tokenizer Tokenizer::from_json_text(const std::string& text, const std::filesystem::path& source) {
  const Src src{source.string()};
  const json root = parse_json_text<FormatError>(text, src.file);
  auto impl = std::make_shared<Impl>();
  impl->path = source;
  impl->hash = sha256_hex(text);
  try {
    impl->load(root, src);
  } catch (const json::exception& e) {
    throw FormatError(src.file + ": " + e.what());
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out = impl_->post_prefix;
  impl_->encode_into(text, out);
  if (add_special) out.insert(out.end(), impl_->post_suffix.begin(), impl_->post_suffix.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    tokens.push_back(id_to_token(id));
  }
  if (!m.has_decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& step : m.decoders) {
    std::vector<std::string> next;
    switch (step.kind) {
      case DecStep::kByteLevel: {
        std::string bytes;
        for (const auto& t : tokens) {
          std::string mapped;
          bool ok = true;
          for (const auto& c : d::decode_utf8(t)) {
            const int b = d::unicode_to_byte(c.cp);
            if (b < 0) {
              ok = false;
              break;
            }
            mapped.push_back(static_cast<char>(b));
          }
          bytes += ok ? mapped : t;
        }
        std::string lossy;
        for (const auto& c : d::decode_utf8(bytes)) d::append_utf8(lossy, c.cp);
        next.push_back(std::move(lossy));
        break;
      }
      case DecStep::kReplace:
        for (const auto& t : tokens) next.push_back(replace_all(t, step.a, step.b));
        break;
      case DecStep::kByteFallback: {
        std::string pending;
        auto flush = [&] {
          if (pending.empty()) return;
          bool valid = true;
          for (const auto& c : d::decode_utf8(pending)) valid = valid && c.cls != d::kInvalid;
          if (valid) {
            next.push_back(pending);
          } else {
            for (size_t i = 0; i < pending.size(); ++i) next.emplace_back("\xEF\xBF\xBD");
          }
          pending.clear();
        };
        for (const auto& t : tokens) {
          if (t.size() == 6 && starts_with(t, "<0x") && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
            pending.push_back(static_cast<char>(std::strtol(t.substr(3, 2).c_str(), nullptr, 16)));
          } else {
            flush();
            next.push_back(t);
          }
        }
        flush();
        break;
      }
      case DecStep::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case DecStep::kStrip: {
        const char32_t content = d::decode_utf8(step.a)[0].cp;
        for (const auto& t : tokens) {
          const auto chars = d::decode_utf8(t);
          size_t b = 0, e = chars.size();
          while (b < step.start && b < chars.size() && chars[b].cp == content) ++b;
          for (size_t i = 0; i < step.stop && e > b && chars[e - 1].cp == content; ++i) --e;
          next.push_back(e > b ? t.substr(chars[b].begin, chars[e - 1].end - chars[b].begin) : "");
        }
        break;
      }
      case DecStep::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop = i == 0 && step.prepend != Prepend::kNever;
          next.push_back(replace_all(tokens[i], step.a, drop ? "" : " "));
        }
        break;
    }
    tokens = std::move(next);
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_text.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& t : impl_->added) {
    if (t.content == token) return t.id;
  }
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !impl_->id_to_text[static_cast<size_t>(id)]) {
    throw ShapeError(impl_->path.string() + ": token id " + std::to_string(id) + " is out of range [0, " +
                     std::to_string(vocab_size()) + ")");
  }
  return *impl_->id_to_text[static_cast<size_t>(id)];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::post_bos_id() const {
  if (impl_->post_prefix.empty()) return std::nullopt;
  return impl_->post_prefix.front();
}

std::optional<int32_t> Tokenizer::post_eos_id() const {
  if (impl_->post_suffix.empty()) return std::nullopt;
  return impl_->post_suffix.back();
}

const std::string& Tokenizer::content_hash() const { return impl_->hash; }

const std::filesystem::path& Tokenizer::path() const { return impl_->path; }

// ---------------------------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tok_->decode(ids_, skip_special_);
  // A trailing U+FFFD is a multi-byte character whose last bytes have not arrived yet.
  static const std::string kReplacement = "\xEF\xBF\xBD";
  if (text.size() <= emitted_ ||
      (text.size() >= kReplacement.size() && text.compare(text.size() - 3, 3, kReplacement) == 0)) {
    return "";
  }
  std::string out = text.substr(emitted_);
  emitted_ = text.size();
  return out;
}

std::string StreamDecoder::flush() {
  const std::string text = tok_->decode(ids_, skip_special_);
  if (text.size() <= emitted_) return "";
  std::string out = text.substr(emitted_);
  emitted_ = text.size();
  return out;
}

}  // namespace sf::tok
