#include "tokenizer/pretokenizer.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <array>

namespace sf::tok::detail {

namespace {

// Characters the regexes treat specially.
bool is_cr_lf(char32_t cp) { return cp == U'\r' || cp == U'\n'; }

// (?i:x) for the ASCII letters of the contractions: Unicode simple case folding also maps the
// long s (U+017F) to 's' and the Kelvin sign (U+212A) to 'k'; only 's' occurs in the contractions.
bool fold_eq(char32_t cp, char lower) {
  if (cp < 128) return static_cast<char32_t>(lower) == (cp | 0x20) && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  return lower == 's' && cp == 0x17F;
}

// End of a contraction ('s 't 're 've 'm 'll 'd) starting at chars[i] (an apostrophe), or i.
size_t contraction(const std::vector<Char>& c, size_t i, bool case_insensitive) {
  const size_t n = c.size();
  if (c[i].cp != U'\'' || i + 1 >= n) return i;
  auto eq = [&](size_t k, char ch) {
    return k < n && (case_insensitive ? fold_eq(c[k].cp, ch) : c[k].cp == static_cast<char32_t>(ch));
  };
  for (char ch : {'s', 't'}) {
    if (eq(i + 1, ch)) return i + 2;
  }
  if (eq(i + 1, 'r') && eq(i + 2, 'e')) return i + 3;
  if (eq(i + 1, 'v') && eq(i + 2, 'e')) return i + 3;
  if (eq(i + 1, 'm')) return i + 2;
  if (eq(i + 1, 'l') && eq(i + 2, 'l')) return i + 3;
  if (eq(i + 1, 'd')) return i + 2;
  return i;
}

size_t run(const std::vector<Char>& c, size_t i, uint8_t cls) {
  while (i < c.size() && (c[i].cls & cls)) ++i;
  return i;
}

// [^\s\p{L}\p{N}]
bool is_other(const Char& ch) { return (ch.cls & (kLetter | kNumber | kSpace)) == 0; }

size_t run_other(const std::vector<Char>& c, size_t i) {
  while (i < c.size() && is_other(c[i])) ++i;
  return i;
}

// \s+(?!\S)|\s+ at i (chars[i] is whitespace).
size_t whitespace_tail(const std::vector<Char>& c, size_t i) {
  const size_t k = run(c, i, kSpace);
  if (k == c.size() || k - 1 == i) return k;
  return k - 1;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const std::vector<Char>& c, size_t i) {
  size_t k = contraction(c, i, false);
  if (k != i) return k;
  size_t j = i;
  if (c[i].cp == U' ' && i + 1 < c.size()) ++j;
  if (j < c.size()) {
    if (c[j].cls & kLetter) return run(c, j, kLetter);
    if (c[j].cls & kNumber) return run(c, j, kNumber);
    if (is_other(c[j])) return run_other(c, j);
  }
  if (c[i].cls & kSpace) return whitespace_tail(c, i);
  return i;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+    (Llama-3: N = 3; Qwen2: \p{N} alone, N = 1)
size_t match_llama3(const std::vector<Char>& c, size_t i, size_t max_digits) {
  const size_t n = c.size();
  size_t k = contraction(c, i, true);
  if (k != i) return k;
  if (c[i].cls & kLetter) return run(c, i, kLetter);
  if (!is_cr_lf(c[i].cp) && !(c[i].cls & kNumber) && i + 1 < n && (c[i + 1].cls & kLetter)) {
    return run(c, i + 1, kLetter);
  }
  if (c[i].cls & kNumber) {
    k = i;
    while (k < n && k - i < max_digits && (c[k].cls & kNumber)) ++k;
    return k;
  }
  size_t j = (c[i].cp == U' ' && i + 1 < n) ? i + 1 : i;
  if (is_other(c[j])) {
    k = run_other(c, j);
    while (k < n && is_cr_lf(c[k].cp)) ++k;
    return k;
  }
  if (!(c[i].cls & kSpace)) return i;
  const size_t end = run(c, i, kSpace);
  for (size_t p = end; p > i; --p) {
    if (is_cr_lf(c[p - 1].cp)) return p;
  }
  return whitespace_tail(c, i);
}

// Letters and numbers new in Unicode 16.0, which utf8proc 2.8 (Unicode 15.1) reports as unassigned
// but the Oniguruma inside `tokenizers` 0.23 (and Rust's char::is_numeric) classify. Found by
// comparing the class of every code point with `tokenizers` at dev time; the only differences.
struct Range {
  char32_t first, last;
  uint8_t cls;
};
constexpr Range kUnicode16[] = {
    {0x1C89, 0x1C8A, kLetter},   {0xA7CB, 0xA7CD, kLetter},   {0xA7DA, 0xA7DC, kLetter},   {0x105C0, 0x105F3, kLetter},
    {0x10D40, 0x10D49, kNumber}, {0x10D4A, 0x10D65, kLetter}, {0x10D6F, 0x10D85, kLetter}, {0x10EC2, 0x10EC4, kLetter},
    {0x11380, 0x11389, kLetter}, {0x1138B, 0x1138B, kLetter}, {0x1138E, 0x1138E, kLetter}, {0x11390, 0x113B5, kLetter},
    {0x113B7, 0x113B7, kLetter}, {0x113D1, 0x113D1, kLetter}, {0x113D3, 0x113D3, kLetter}, {0x116D0, 0x116E3, kNumber},
    {0x11BC0, 0x11BE0, kLetter}, {0x11BF0, 0x11BF9, kNumber}, {0x13460, 0x143FA, kLetter}, {0x16100, 0x1611D, kLetter},
    {0x16130, 0x16139, kNumber}, {0x16D40, 0x16D6C, kLetter}, {0x16D70, 0x16D79, kNumber}, {0x18CFF, 0x18CFF, kLetter},
    {0x1CCF0, 0x1CCF9, kNumber}, {0x1E5D0, 0x1E5ED, kLetter}, {0x1E5F0, 0x1E5F0, kLetter}, {0x1E5F1, 0x1E5FA, kNumber},
    {0x2EBF0, 0x2EE5D, kLetter},
};

uint8_t unicode16_class(char32_t cp) {
  for (const auto& r : kUnicode16) {
    if (cp >= r.first && cp <= r.last) return r.cls;
  }
  return 0;
}

struct ByteMap {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};
  ByteMap() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

const char* const kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

bool is_whitespace(char32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint8_t classify(char32_t cp) {
  if (cp < 128) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
    return is_whitespace(cp) ? kSpace : 0;
  }
  if (is_whitespace(cp)) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_CN:
      return unicode16_class(cp);
    default:
      return 0;
  }
}

bool is_word_char(char32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

std::vector<Char> decode_utf8(std::string_view s, bool with_classes) {
  std::vector<Char> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      out.push_back({b0, static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1),
                     static_cast<uint8_t>(with_classes ? classify(b0) : 0)});
      ++i;
      continue;
    }
    // Expected length and the valid range of the second byte (Unicode table 3-7).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2, cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3, cp = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4, cp = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    size_t k = 1;
    for (; len > 0 && k < len && i + k < n; ++k) {
      const unsigned char b = p[i + k];
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) break;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (len > 0 && k == len) {
      out.push_back({cp, static_cast<uint32_t>(i), static_cast<uint32_t>(i + len),
                     static_cast<uint8_t>(with_classes ? classify(cp) : 0)});
    } else {
      out.push_back({0xFFFD, static_cast<uint32_t>(i), static_cast<uint32_t>(i + k), kInvalid});
    }
    i += k;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

bool known_pattern(const std::string& regex, Pattern* out) {
  if (regex == kGpt2Regex) {
    *out = Pattern::kGpt2;
  } else if (regex == kLlama3Regex) {
    *out = Pattern::kLlama3;
  } else if (regex == kQwen2Regex) {
    *out = Pattern::kQwen2;
  } else {
    return false;
  }
  return true;
}

size_t match_at(Pattern p, const std::vector<Char>& chars, size_t i) {
  switch (p) {
    case Pattern::kGpt2:
      return match_gpt2(chars, i);
    case Pattern::kLlama3:
      return match_llama3(chars, i, 3);
    case Pattern::kQwen2:
      return match_llama3(chars, i, 1);
  }
  return i;
}

Matches regex_matches(Pattern p, std::string_view s) {
  const std::vector<Char> chars = decode_utf8(s);
  Matches out;
  for (size_t i = 0; i < chars.size();) {
    const size_t e = match_at(p, chars, i);
    if (e == i) {
      ++i;
      continue;
    }
    out.emplace_back(chars[i].begin, chars[e - 1].end);
    i = e;
  }
  return out;
}

Matches string_matches(std::string_view needle, std::string_view s) {
  Matches out;
  if (needle.empty()) return out;
  for (size_t at = s.find(needle); at != std::string_view::npos; at = s.find(needle, at + needle.size())) {
    out.emplace_back(at, at + needle.size());
  }
  return out;
}

Matches split(size_t size, const Matches& matches, Behavior behavior, bool invert) {
  // Pieces covering s, each flagged as a match (of the pattern, or of its inverse).
  struct Piece {
    size_t begin, end;
    bool match;
  };
  std::vector<Piece> pieces;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b != prev) pieces.push_back({prev, b, invert});
    pieces.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != size) pieces.push_back({prev, size, invert});

  std::vector<Piece> out;
  switch (behavior) {
    case Behavior::kIsolated:
      out = pieces;
      break;
    case Behavior::kRemoved:
      for (const auto& p : pieces) {
        if (!p.match) out.push_back(p);
      }
      break;
    case Behavior::kContiguous:
      for (const auto& p : pieces) {
        if (!out.empty() && out.back().match == p.match) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
      }
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : pieces) {
        if (p.match && !previous_match && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        previous_match = p.match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  Matches result;
  result.reserve(out.size());
  for (const auto& p : out) {
    if (p.end > p.begin) result.emplace_back(p.begin, p.end);
  }
  return result;
}

char32_t byte_to_unicode(uint8_t b) { return byte_map().to_cp[b]; }

int unicode_to_byte(char32_t cp) { return cp < 324 ? byte_map().to_byte[cp] : -1; }

}  // namespace sf::tok::detail
