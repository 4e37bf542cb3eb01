#include "heads/base_model.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "io/gguf.hpp"
#include "io/safetensors.hpp"
#include "model/config.hpp"
#include "model/gguf_model.hpp"
#include "model/model_files.hpp"

namespace sf::heads {
namespace fs = std::filesystem;
namespace {

// sha256 of `len` bytes of `file` starting at `offset`.
std::string sha256_range(const fs::path& file, uint64_t offset, uint64_t len) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string() + ": cannot open");
  std::string buf(len, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  if (!in.read(buf.data(), static_cast<std::streamsize>(len))) {
    throw IoError(file.string() + ": cannot read " + std::to_string(len) + " bytes at offset " +
                  std::to_string(offset));
  }
  return sha256_hex(buf);
}

}  // namespace

std::map<std::string, fs::path> weight_map(const fs::path& dir) {
  std::map<std::string, fs::path> out;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    const io::SafetensorsFile f = io::SafetensorsFile::open(single);
    for (const auto& t : f.tensors()) out[t.name] = single;
    return out;
  }
  if (!fs::exists(index)) {
    throw IoError(dir.string() + ": neither model.safetensors nor model.safetensors.index.json exists");
  }
  const nlohmann::json j = read_json_file(index);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw FormatError(index.string() + ": weight_map is missing or not an object");
  }
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    const std::string shard = it.value().is_string() ? it.value().get<std::string>() : std::string();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      throw FormatError(index.string() + ": weight_map." + it.key() + ": expected a file name in " + dir.string());
    }
    out[it.key()] = dir / shard;
  }
  return out;
}

namespace {

std::string gguf_fingerprint(const fs::path& file) {
  const io::GgufFile g = io::GgufFile::open(file);
  constexpr uint64_t kSample = uint64_t{1} << 20;
  const uint64_t size = g.file_size(), data = std::min(g.data_offset(), size);
  const uint64_t n = std::min(size - data, kSample);
  return sha256_hex("gguf:" + file.filename().string() + ":" + std::to_string(size) + ":" + g.header_sha256() + ":" +
                    sha256_range(file, data, n) + ":" + sha256_range(file, size - n, n) + "\n");
}

}  // namespace

std::string model_fingerprint(const fs::path& dir) {
  if (model::is_gguf_model(dir)) return gguf_fingerprint(dir);
  std::string s = "config.json:" + sha256_file(dir / "config.json") + "\n";
  std::set<fs::path> files;
  for (const auto& [name, file] : weight_map(dir)) files.insert(file);
  constexpr uint64_t kSample = uint64_t{1} << 20;
  for (const fs::path& f : files) {
    std::error_code ec;
    const uint64_t size = fs::file_size(f, ec);
    if (ec) throw IoError(f.string() + ": " + ec.message());
    const uint64_t n = std::min(size, kSample);
    s += f.filename().string() + ":" + std::to_string(size) + ":" + sha256_range(f, 0, n) + ":" +
         sha256_range(f, size - n, n) + "\n";
  }
  return sha256_hex(s);
}

std::string tokenizer_fingerprint(const fs::path& dir) {
  if (model::is_gguf_model(dir)) {
    return model::has_tokenizer(dir) ? sha256_hex(model::tokenizer_json_text(dir)) : "none";
  }
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    if (fs::exists(dir / name)) return sha256_file(dir / name);
  }
  return "none";
}

torch::Tensor load_lm_head_weight(const fs::path& dir) {
  if (model::is_gguf_model(dir)) {
    const model::GgufModel g = model::GgufModel::open(dir);
    const model::ModelConfig& c = g.config();
    torch::Tensor w = g.tensor(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    if (w.dim() != 2 || w.size(0) != c.vocab_size || w.size(1) != c.hidden_size) {
      throw FormatError(dir.string() + ": lm_head has shape " + c10::str(w.sizes()) + ", expected [" +
                        std::to_string(c.vocab_size) + ", " + std::to_string(c.hidden_size) + "]");
    }
    return w.contiguous();
  }
  const model::ModelConfig config = model::ModelConfig::from_file(dir / "config.json");
  const std::string name = config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const auto files = weight_map(dir);
  auto it = files.find(name);
  if (it == files.end()) throw FormatError(dir.string() + ": tensor '" + name + "' is missing");
  const io::SafetensorsFile f = io::SafetensorsFile::open(it->second);
  if (!f.contains(name)) throw FormatError(it->second.string() + ": tensor '" + name + "' is missing");
  torch::Tensor w = f.tensor(name);
  if (w.dim() != 2 || w.size(0) != config.vocab_size || w.size(1) != config.hidden_size) {
    throw FormatError(it->second.string() + ": tensor '" + name + "' has shape " + c10::str(w.sizes()) +
                      ", expected [" + std::to_string(config.vocab_size) + ", " + std::to_string(config.hidden_size) +
                      "]");
  }
  return w.to(torch::kFloat32).contiguous();
}

}  // namespace sf::heads
