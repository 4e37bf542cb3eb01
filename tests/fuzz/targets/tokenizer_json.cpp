// tokenizer.json documents: normalizers, pre-tokenizers, models (BPE vocab and merges, byte
// fallback), added tokens, post-processors and decoders; then encoding and decoding with the
// tokenizer built from the document.
#include "fuzz/targets/targets.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::fuzz {

void tokenizer_json(const uint8_t* data, size_t size) {
  const tok::Tokenizer t = tok::Tokenizer::from_json_text(text_of(data, size), "fuzz/tokenizer.json");
  for (const char* text :
       {"Hello world, it's 2024!\n  naïve café 日本語 🙂", "<s>[INST] hi [/INST]", "\xff\xfe a"}) {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = t.encode(text, special);
      (void)t.decode(ids, false);
      (void)t.decode(ids, true);
    }
  }
  std::vector<int32_t> all;
  for (int32_t id = 0; id < std::min<int32_t>(t.vocab_size(), 512); ++id) {
    all.push_back(id);
    (void)t.id_to_token(id);
    (void)t.is_special(id);
  }
  (void)t.decode(all, false);
  tok::StreamDecoder stream(t, false);
  for (int32_t id : all) (void)stream.push(id);
  (void)stream.flush();
}

}  // namespace sf::fuzz
