#pragma once
// Hugging Face tokenizer.json, exact: the ids equal `tokenizers` for every text.
// Families: byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM2) and SentencePiece-style BPE with
// byte fallback (Llama-2, Mistral). Added/special tokens are matched before pre-tokenization.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sf::tok {

class Tokenizer {
 public:
  // Throws FormatError naming the file and the unsupported component (e.g. "pre_tokenizer.type=Metaspace").
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The same from a tokenizer.json document held in memory; `source` names it in errors and is
  // what path() returns (e.g. the GGUF file a document was made from).
  static Tokenizer from_json_text(const std::string& text, const std::filesystem::path& source);

  // As HF `encode(text, add_special_tokens=add_special)`: special tokens written in `text` are
  // matched as tokens; with add_special the post-processor's BOS/EOS are added.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // As HF `decode(ids, skip_special_tokens=skip_special)`.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // Number of ids (max id + 1, added tokens included).
  int32_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws ShapeError when out of range
  bool is_special(int32_t id) const;
  // BOS/EOS as the post-processor adds them (nullopt when it adds none).
  std::optional<int32_t> post_bos_id() const;
  std::optional<int32_t> post_eos_id() const;
  // SHA-256 of the tokenizer.json bytes (of the document given to from_json_text).
  const std::string& content_hash() const;
  const std::filesystem::path& path() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Incremental decoding for streamed generation: returns only complete UTF-8 text, holding back a
// partial multi-byte character until its last byte arrives.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  std::string push(int32_t id);
  std::string flush();  // whatever is left, invalid bytes replaced by U+FFFD

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

}  // namespace sf::tok
