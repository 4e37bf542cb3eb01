#include "heads/export.hpp"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/files.hpp"
#include "heads/base_model.hpp"
#include "heads/head_set.hpp"
#include "io/safetensors.hpp"
#include "model/config.hpp"
#include "model/model_files.hpp"

namespace sf::heads {
namespace fs = std::filesystem;
namespace {

void write_json(const fs::path& file, const nlohmann::json& j) {
  std::ofstream out(file, std::ios::binary);
  out << j.dump(2) << "\n";
  if (!out) throw IoError(file.string() + ": cannot write");
}

// Tensors of a safetensors file except `drop`, with the file's metadata ("format": "pt" ensured, as
// transformers requires it).
std::vector<std::pair<std::string, torch::Tensor>> tensors_without(const fs::path& file, const std::string& drop,
                                                                   std::map<std::string, std::string>* meta) {
  auto all = io::read_safetensors(file, meta);
  (*meta)["format"] = "pt";
  std::vector<std::pair<std::string, torch::Tensor>> kept;
  for (auto& [name, t] : all) {
    if (name != drop) kept.emplace_back(name, t);
  }
  return kept;
}

}  // namespace

void export_merged(const fs::path& base, const fs::path& head_file, const fs::path& out) {
  if (model::is_gguf_model(base))
    throw ConfigError(base.string() +
                      ": export-merged writes a Hugging Face folder from a folder; convert the GGUF "
                      "file first (superficial convert FILE.gguf --out DIR)");
  const HeadSet set = HeadSet::load(head_file);
  if (set.spec().type != "hidden") {
    throw ConfigError(head_file.string() + ": a " + set.spec().type +
                      " head cannot be merged into a model (only hidden heads are a change of lm_head; these "
                      "architectures have no lm_head bias)");
  }
  if (set.is_per_task())
    throw ConfigError(head_file.string() + ": holds one head per task; a merged model can carry only one");
  const Head& head = set.for_task("");
  const std::string base_hash = model_fingerprint(base);
  auto it = set.metadata().find("base_model_hash");
  if (it == set.metadata().end() || it->second != base_hash) {
    throw ConfigError(head_file.string() + ": trained on base model " +
                      (it == set.metadata().end() ? std::string("(unrecorded)") : it->second) + ", but " +
                      base.string() + " has fingerprint " + base_hash);
  }
  if (fs::exists(out) && !fs::is_empty(out)) throw IoError(out.string() + ": exists and is not empty");
  fs::create_directories(out);

  nlohmann::json config = read_json_file(base / "config.json");
  model::ModelConfig::from_json(config, (base / "config.json").string());  // ConfigError for unsupported models
  const torch::Tensor w = load_lm_head_weight(base);                       // [V,H]
  if (w.size(0) != head.vocab_size() || w.size(1) != head.hidden_size()) {
    throw ShapeError(head_file.string() + ": head is [" + std::to_string(head.vocab_size()) + "," +
                     std::to_string(head.hidden_size()) + "], the base's lm_head " + c10::str(w.sizes()));
  }
  torch::Tensor merged;
  {
    torch::NoGradGuard no_grad;
    merged = (w + head.delta_weight().to(torch::kFloat32)).contiguous();  // [V,H]
  }
  config["tie_word_embeddings"] = false;
  write_json(out / "config.json", config);

  // Non-weight files (tokenizer, generation config, ...) are copied unchanged.
  const auto files = weight_map(base);
  std::set<fs::path> weight_files;
  for (const auto& [name, file] : files) weight_files.insert(file);
  for (const auto& entry : fs::directory_iterator(base)) {
    const fs::path& p = entry.path();
    const std::string name = p.filename().string();
    if (!entry.is_regular_file() || weight_files.count(p) || name == "config.json" ||
        name == "model.safetensors.index.json") {
      continue;
    }
    fs::copy_file(p, out / name);
  }

  const std::string lm = "lm_head.weight";
  if (fs::exists(base / "model.safetensors")) {
    std::map<std::string, std::string> meta;
    auto tensors = tensors_without(base / "model.safetensors", lm, &meta);
    tensors.emplace_back(lm, merged);
    io::write_safetensors(out / "model.safetensors", tensors, meta);
    return;
  }
  // Sharded: rewrite the shard holding lm_head.weight (if any), copy the others, add a shard.
  nlohmann::json index = read_json_file(base / "model.safetensors.index.json");
  const auto holder = files.find(lm);
  for (const fs::path& shard : weight_files) {
    if (holder != files.end() && holder->second == shard) {
      std::map<std::string, std::string> meta;
      io::write_safetensors(out / shard.filename(), tensors_without(shard, lm, &meta), meta);
    } else {
      fs::copy_file(shard, out / shard.filename());
    }
  }
  const std::string head_shard = "lm_head.safetensors";
  if (files.count(head_shard)) throw FormatError(base.string() + ": a shard is already named " + head_shard);
  io::write_safetensors(out / head_shard, {{lm, merged}}, {{"format", "pt"}});
  index["weight_map"][lm] = head_shard;
  if (index.contains("metadata") && index["metadata"].is_object()) index["metadata"].erase("total_size");
  write_json(out / "model.safetensors.index.json", index);
}

}  // namespace sf::heads
