// GGUF files: header, metadata of every type, tensor infos and data (dequantised), the model
// config built from the metadata and the tokenizer built from tokenizer.ggml.*.
#include "io/gguf.hpp"

#include "core/error.hpp"
#include "fuzz/targets/targets.hpp"
#include "model/model_files.hpp"
#include "tokenizer/gguf_tokenizer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::fuzz {

void gguf(const uint8_t* data, size_t size) {
  const std::filesystem::path file = scratch_file("input.gguf", data, size);
  const io::GgufFile f = io::GgufFile::open(file);
  for (const auto& info : f.tensors()) {
    if (info.numel() > (1 << 20)) continue;  // large tensors only cost time
    const torch::Tensor t = f.tensor(info.name);
    (void)t.sum().item<double>();
  }
  (void)f.header_sha256();
  try {
    (void)model::load_model_config(file);
  } catch (const Error&) {  // not a model the runtime supports; the tokenizer is read anyway
  }
  if (!tok::gguf_has_tokenizer(f)) return;
  const tok::Tokenizer t = tok::Tokenizer::from_json_text(tok::gguf_tokenizer_json(f), file);
  const std::vector<int32_t> ids = t.encode("Hello world! 日本 <s> 123", true);
  (void)t.decode(ids, false);
}

}  // namespace sf::fuzz
