// Any text and any ids through real tokenizers (the committed fixtures: a byte-level BPE and a
// SentencePiece-style BPE with byte fallback): encode with and without special tokens, decode
// (whole and streamed), and decode of the input bytes read as ids, out-of-range ids included.
#include <cstring>

#include "core/error.hpp"
#include "fuzz/targets/targets.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::fuzz {
namespace {

const std::vector<tok::Tokenizer>& tokenizers() {
  static const std::vector<tok::Tokenizer> all = [] {
    const std::filesystem::path dir = source_dir() / "tests/fixtures/judges";
    return std::vector<tok::Tokenizer>{tok::Tokenizer::from_file(dir / "bpe/tokenizer.json"),
                                       tok::Tokenizer::from_file(dir / "llama/tokenizer.json")};
  }();
  return all;
}

}  // namespace

void tokenizer_text(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  for (const tok::Tokenizer& t : tokenizers()) {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = t.encode(text, special);
      (void)t.decode(ids, special);
    }
    // The bytes as little-endian 16-bit ids (some beyond the vocabulary: a ShapeError).
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 1 < size; i += 2) {
      uint16_t v = 0;
      std::memcpy(&v, data + i, 2);
      ids.push_back(static_cast<int32_t>(v % static_cast<uint16_t>(t.vocab_size() + 8)));
    }
    try {
      (void)t.decode(ids, false);
    } catch (const Error&) {  // ids outside the vocabulary; the stream below must refuse them too
    }
    try {
      tok::StreamDecoder stream(t, true);
      for (int32_t id : ids) (void)stream.push(id);
      (void)stream.flush();
    } catch (const Error&) {
    }
  }
}

}  // namespace sf::fuzz
