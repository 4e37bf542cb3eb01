#pragma once
// Internals of the tokenizer pipeline, exposed for tests: UTF-8 decoding, the Unicode classes the
// HF pre-tokenizer regexes use, hand-coded matchers for those regexes, Split behaviours and the
// GPT-2 byte-level alphabet. No regex engine is involved: each known pattern is a small matcher
// that reproduces Oniguruma's leftmost-first alternation for that pattern exactly.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sf::tok::detail {

// One code point of a decoded string: its value, byte range in the source and class bits.
struct Char {
  char32_t cp;
  uint32_t begin;  // byte offset
  uint32_t end;
  uint8_t cls;
};
enum CharClass : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kInvalid = 8 };

// Decodes UTF-8 as Rust's from_utf8_lossy does: each maximal invalid subsequence becomes one Char
// U+FFFD of class kInvalid spanning those bytes. Without `with_classes`, valid characters get class 0.
std::vector<Char> decode_utf8(std::string_view s, bool with_classes = true);
void append_utf8(std::string& out, char32_t cp);
// \p{L}, \p{N} (categories via utf8proc) and \s (the Unicode White_Space property).
uint8_t classify(char32_t cp);
bool is_whitespace(char32_t cp);
// Rust regex \w (single_word added tokens): letters, marks, decimal and letter numbers, connector
// punctuation, and the joiners U+200C/U+200D.
bool is_word_char(char32_t cp);

// The pre-tokenizer regexes used by real tokenizer.json files, recognised by their exact text.
enum class Pattern { kGpt2, kLlama3, kQwen2 };
// The pattern for a regex string, or false when it is not one we implement.
bool known_pattern(const std::string& regex, Pattern* out);
extern const char* const kGpt2Regex;    // the regex ByteLevel(use_regex=true) applies
extern const char* const kLlama3Regex;  // Llama-3's Split regex
extern const char* const kQwen2Regex;   // Qwen2's Split regex
// End (index into `chars`) of the match starting at `i`, or `i` when no alternative matches there.
size_t match_at(Pattern p, const std::vector<Char>& chars, size_t i);

// Non-overlapping matches [begin, end) in bytes, left to right.
using Matches = std::vector<std::pair<size_t, size_t>>;
Matches regex_matches(Pattern p, std::string_view s);
Matches string_matches(std::string_view needle, std::string_view s);
// HF SplitDelimiterBehavior.
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
// Splits a string of `size` bytes around `matches` (or around the non-matching parts when `invert`):
// the byte ranges of the pieces, empty pieces dropped.
Matches split(size_t size, const Matches& matches, Behavior behavior, bool invert);

// GPT-2 bytes_to_unicode: byte -> printable code point, and back (-1 when not in the alphabet).
char32_t byte_to_unicode(uint8_t b);
int unicode_to_byte(char32_t cp);

}  // namespace sf::tok::detail
