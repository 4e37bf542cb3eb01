// Saving and loading heads as safetensors with metadata.
#include <set>

#include "core/error.hpp"
#include "heads/head.hpp"
#include "heads/head_impl.hpp"
#include "io/safetensors.hpp"

namespace sf::heads {
namespace {

int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(file + ": metadata '" + key + "' is missing");
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size() || v < 0) {
    throw FormatError(file + ": metadata '" + key + "' = '" + it->second + "' is not a non-negative integer");
  }
  return v;
}

std::string meta_str(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(file + ": metadata '" + key + "' is missing");
  return it->second;
}

}  // namespace

void Head::save(const std::filesystem::path& file, const std::map<std::string, std::string>& extra) const {
  const Impl& m = *impl_;
  std::map<std::string, std::string> meta = extra;
  meta[kFormatKey] = kFormat;
  meta["name"] = m.spec.name;
  meta["variant"] = m.spec.variant;
  meta["rank"] = std::to_string(m.spec.rank);
  meta["k"] = std::to_string(m.spec.k);
  meta["vocab_size"] = std::to_string(m.vocab_size);
  meta["hidden_size"] = std::to_string(m.hidden_size);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, t] : m.params) tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32));
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
  io::write_safetensors(file, tensors, meta);
}

Head Head::load(const std::filesystem::path& file, torch::Device device) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(file);
  const std::string where = file.string();
  const auto& meta = f.metadata();
  auto fmt = meta.find(kFormatKey);
  if (fmt == meta.end() || fmt->second != kFormat) {
    throw FormatError(where + ": metadata '" + kFormatKey + "' is not '" + kFormat + "' (not a superficial head)");
  }
  auto impl = std::make_shared<Impl>();
  impl->spec.name = meta_str(meta, "name", where);
  impl->spec.variant = meta_str(meta, "variant", where);
  impl->spec.rank = meta_int(meta, "rank", where);
  impl->spec.k = meta_int(meta, "k", where);
  impl->vocab_size = meta_int(meta, "vocab_size", where);
  impl->hidden_size = meta_int(meta, "hidden_size", where);
  try {
    validate(impl->spec, where + ": metadata");
  } catch (const ConfigError& e) {
    throw FormatError(e.what());
  }
  if (impl->vocab_size == 0 || (impl->spec.variant == "hidden") != (impl->hidden_size > 0)) {
    throw FormatError(where + ": metadata vocab_size/hidden_size do not fit a " + impl->spec.variant + " head");
  }
  const auto expected = Impl::expected_shapes(impl->spec, impl->vocab_size, impl->hidden_size);
  std::set<std::string> names;
  for (const auto& [name, shape] : expected) {
    names.insert(name);
    if (!f.contains(name)) throw FormatError(where + ": tensor '" + name + "' is missing");
    const io::TensorInfo& info = f.info(name);
    if (info.dtype != "F32")
      throw FormatError(where + ": tensor '" + name + "' has dtype " + info.dtype + ", expected F32");
    if (info.shape != shape) {
      throw FormatError(where + ": tensor '" + name + "' has shape " + c10::str(c10::IntArrayRef(info.shape)) +
                        ", expected " + c10::str(c10::IntArrayRef(shape)));
    }
    impl->params.emplace_back(name, f.tensor(name).to(device));
  }
  for (const auto& t : f.tensors()) {
    if (!names.count(t.name)) throw FormatError(where + ": unexpected tensor '" + t.name + "'");
  }
  impl->metadata = meta;
  return Head(std::move(impl));
}

}  // namespace sf::heads
