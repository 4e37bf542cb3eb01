#include "model/gguf_convert.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "model/causal_lm.hpp"
#include "model/gguf_model.hpp"
#include "model/model_files.hpp"

namespace sf::model {

namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw IoError(file.string() + ": cannot write");
}

}  // namespace

void convert_gguf(const fs::path& gguf, const fs::path& out, torch::Dtype dtype) {
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out))) {
    throw IoError(out.string() + ": exists and is not an empty folder");
  }
  const GgufModel model = GgufModel::open(gguf);
  LoadOptions opts;
  opts.dtype = dtype;
  const CausalLM lm = CausalLM::from_tensors(model.config(), model.tensors(), opts, gguf.string());
  fs::create_directories(out);
  lm.save(out);
  if (!has_tokenizer(gguf)) return;
  const std::string text = tokenizer_json_text(gguf);
  write_text(out / "tokenizer.json", text);
  const tok::Tokenizer tok = tok::Tokenizer::from_json_text(text, out / "tokenizer.json");
  const ModelConfig& c = model.config();
  nlohmann::json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                        {"clean_up_tokenization_spaces", false},
                        {"model_max_length", c.max_position_embeddings}};
  auto token = [&](const char* key, std::optional<int64_t> id) {
    if (id && *id < tok.vocab_size()) cfg[key] = tok.id_to_token(static_cast<int32_t>(*id));
  };
  token("bos_token", c.bos_token_id);
  token("eos_token", c.eos_token_ids.empty() ? std::nullopt : std::optional<int64_t>(c.eos_token_ids[0]));
  token("pad_token", c.pad_token_id);
  const io::GgufFile& f = model.file();
  if (f.find("tokenizer.ggml.unknown_token_id")) {
    token("unk_token", static_cast<int64_t>(f.get_uint("tokenizer.ggml.unknown_token_id")));
  }
  if (f.find("tokenizer.chat_template")) cfg["chat_template"] = f.get_string("tokenizer.chat_template");
  write_text(out / "tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace sf::model
