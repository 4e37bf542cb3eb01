#include "model/weight_source.hpp"

#include "core/error.hpp"
#include "core/files.hpp"

namespace sf::model {

std::unique_ptr<SafetensorsSource> SafetensorsSource::open(const std::filesystem::path& dir) {
  auto s = std::unique_ptr<SafetensorsSource>(new SafetensorsSource());
  s->dir_ = dir;
  auto& files = s->files_;
  auto& where = s->where_;
  const auto single = dir / "model.safetensors";
  const auto index = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single)) {
    files.push_back(io::SafetensorsFile::open(single));
    for (const auto& t : files[0].tensors()) where[t.name] = 0;
    return s;
  }
  if (!std::filesystem::exists(index)) {
    throw IoError(dir.string() + ": neither model.safetensors nor model.safetensors.index.json exists");
  }
  const nlohmann::json j = read_json_file(index);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw FormatError(index.string() + ": weight_map is missing or not an object");
  }
  std::map<std::string, size_t> shard_ids;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw FormatError(index.string() + ": weight_map." + it.key() + ": expected a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      throw FormatError(index.string() + ": weight_map." + it.key() + ": '" + shard + "' is not a file name in " +
                        dir.string());
    }
    if (!shard_ids.count(shard)) {
      shard_ids[shard] = files.size();
      files.push_back(io::SafetensorsFile::open(dir / shard));
    }
    const size_t f = shard_ids[shard];
    if (!files[f].contains(it.key())) {
      throw FormatError(files[f].path().string() + ": tensor '" + it.key() + "' named by the index is missing");
    }
    where[it.key()] = f;
  }
  for (const auto& f : files) {
    for (const auto& t : f.tensors()) {
      if (!where.count(t.name) || files[where[t.name]].path() != f.path()) {
        throw FormatError(f.path().string() + ": tensor '" + t.name + "' is not in the index's weight_map");
      }
    }
  }
  return s;
}

std::string SafetensorsSource::describe() const { return dir_.string(); }

std::vector<std::string> SafetensorsSource::names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : where_) out.push_back(name);
  return out;
}

bool SafetensorsSource::contains(const std::string& name) const { return where_.count(name) > 0; }

const io::SafetensorsFile& SafetensorsSource::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw FormatError(dir_.string() + ": no tensor '" + name + "'");
  return files_[it->second];
}

WeightInfo SafetensorsSource::info(const std::string& name) const {
  const io::SafetensorsFile& f = file_of(name);
  const io::TensorInfo& t = f.info(name);
  return WeightInfo{t.dtype, t.shape, f.path().string()};
}

torch::Tensor SafetensorsSource::read(const std::string& name) const { return file_of(name).tensor(name); }

torch::Tensor SafetensorsSource::read_slice(const std::string& name, int64_t dim, int64_t begin, int64_t end) const {
  return file_of(name).read_slice(name, dim, begin, end);
}

}  // namespace sf::model
