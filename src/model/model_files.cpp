#include "model/model_files.hpp"

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "core/files.hpp"
#include "io/gguf.hpp"
#include "model/gguf_model.hpp"
#include "tokenizer/gguf_tokenizer.hpp"

namespace sf::model {

namespace fs = std::filesystem;

namespace {

// The tokenizer.json to read for `model`, or nullopt for a GGUF file's own tokenizer.
std::optional<fs::path> tokenizer_json_path(const fs::path& model) {
  if (is_gguf_model(model)) {
    const fs::path beside = model.parent_path() / "tokenizer.json";
    if (fs::is_regular_file(beside)) return beside;
    return std::nullopt;
  }
  return fs::is_directory(model) ? model / "tokenizer.json" : model;
}

}  // namespace

bool is_gguf_model(const fs::path& model) { return io::is_gguf_file(model); }

ModelConfig load_model_config(const fs::path& model) {
  if (is_gguf_model(model)) return GgufModel::open(model).config();
  return ModelConfig::from_file(model / "config.json");
}

bool has_tokenizer(const fs::path& model) {
  const auto json = tokenizer_json_path(model);
  if (json) return fs::is_regular_file(*json);
  return tok::gguf_has_tokenizer(io::GgufFile::open(model));
}

std::string tokenizer_json_text(const fs::path& model) {
  if (const auto json = tokenizer_json_path(model)) {
    if (!fs::is_regular_file(*json)) throw IoError(json->string() + ": no tokenizer (tokenizer.json not found)");
    return read_text_file(*json);
  }
  const io::GgufFile file = io::GgufFile::open(model);
  if (!tok::gguf_has_tokenizer(file)) {
    throw IoError(model.string() +
                  ": the file holds no tokenizer (no tokenizer.ggml.model) and no tokenizer.json "
                  "is beside it");
  }
  return tok::gguf_tokenizer_json(file);
}

tok::Tokenizer load_tokenizer(const fs::path& model) {
  const auto json = tokenizer_json_path(model);
  if (json && is_gguf_model(model)) spdlog::debug("{}: using the tokenizer.json beside it", model.string());
  return tok::Tokenizer::from_json_text(tokenizer_json_text(model), json ? *json : model);
}

}  // namespace sf::model
