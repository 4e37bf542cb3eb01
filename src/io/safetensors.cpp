#include "io/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "io/mapped_file.hpp"

namespace sf::io {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

struct DtypeInfo {
  const char* name;
  uint64_t bytes;
  torch::Dtype dtype;
};

const DtypeInfo kDtypes[] = {
    {"F64", 8, torch::kFloat64},   {"F32", 4, torch::kFloat32}, {"F16", 2, torch::kFloat16},
    {"BF16", 2, torch::kBFloat16}, {"I64", 8, torch::kInt64},   {"I32", 4, torch::kInt32},
    {"I16", 2, torch::kInt16},     {"I8", 1, torch::kInt8},     {"U8", 1, torch::kUInt8},
    {"BOOL", 1, torch::kBool},
};

// Every dtype the format defines, so that a file with an unsupported but valid dtype still
// validates and fails only when that tensor is requested.
uint64_t dtype_bytes(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.bytes;
  }
  if (name == "U64") return 8;
  if (name == "U32") return 4;
  if (name == "U16") return 2;
  if (name == "F8_E4M3" || name == "F8_E5M2") return 1;
  return 0;
}

std::string errno_text() { return std::strerror(errno); }

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

// a * b with overflow detection.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return true;
  *out = a * b;
  return false;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& file) {
  const std::string f = file.string();
  std::shared_ptr<MappedFile> map = MappedFile::open(file);
  const uint64_t file_size = map->size();
  if (file_size < 8) {
    throw FormatError(f + ": file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map->data()[i];
  if (header_len > kMaxHeaderBytes) {
    throw FormatError(f + ": header length " + std::to_string(header_len) + " at byte offset 0 exceeds 100 MB");
  }
  if (header_len > file_size - 8) {
    throw FormatError(f + ": header length " + std::to_string(header_len) +
                      " at byte offset 0 runs past the end of the " + std::to_string(file_size) + "-byte file");
  }
  const char* hdr = reinterpret_cast<const char*>(map->data() + 8);
  if (header_len == 0 || hdr[0] != '{') throw FormatError(f + ": header at byte offset 8 is not a JSON object");
  const nlohmann::json j = parse_json_text<FormatError>(std::string_view(hdr, header_len), f + ": header", 8);
  if (!j.is_object()) throw FormatError(f + ": header at byte offset 8 is not a JSON object");

  SafetensorsFile out;
  out.path_ = file;
  out.data_start_ = 8 + header_len;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError(f + ": __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          throw FormatError(f + ": __metadata__ key " + in_quotes(m.key()) + " is not a string");
        }
        out.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = f + ": tensor " + in_quotes(name);
    if (!v.is_object()) throw FormatError(where + ": entry is not an object");
    for (auto k = v.begin(); k != v.end(); ++k) {
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets") {
        throw FormatError(where + ": unknown key " + in_quotes(k.key()));
      }
    }
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw FormatError(where + ": dtype missing or not a string");
    if (!v.contains("shape") || !v["shape"].is_array()) throw FormatError(where + ": shape missing or not an array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) {
      throw FormatError(where + ": data_offsets must be an array of two offsets");
    }
    TensorInfo t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    const uint64_t esize = dtype_bytes(t.dtype);
    if (esize == 0) throw FormatError(where + ": unknown dtype " + in_quotes(t.dtype));
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw FormatError(where + ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || mul_overflows(numel, dim, &numel)) {
        throw FormatError(where + ": shape overflows the element count");
      }
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"]) {
      if (!o.is_number_unsigned()) throw FormatError(where + ": data_offsets must be non-negative integers");
    }
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    uint64_t nbytes = 0;
    if (mul_overflows(numel, esize, &nbytes)) throw FormatError(where + ": byte size overflows");
    if (t.end < t.begin || t.end - t.begin != nbytes) {
      throw FormatError(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                        "] do not span " + std::to_string(nbytes) + " bytes (shape x " + t.dtype + ") at byte offset " +
                        std::to_string(out.data_start_ + t.begin));
    }
    out.tensors_.push_back(std::move(t));
  }
  std::stable_sort(out.tensors_.begin(), out.tensors_.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  const uint64_t data_size = file_size - out.data_start_;
  uint64_t expected = 0;
  for (size_t i = 0; i < out.tensors_.size(); ++i) {
    const TensorInfo& t = out.tensors_[i];
    if (t.begin != expected) {
      const std::string what =
          t.begin < expected ? "overlaps the previous tensor" : "leaves a gap after the previous tensor";
      throw FormatError(f + ": tensor " + in_quotes(t.name) + " " + what + " at byte offset " +
                        std::to_string(out.data_start_ + t.begin) + " (expected data offset " +
                        std::to_string(expected) + ")");
    }
    if (t.end > data_size) {
      throw FormatError(f + ": tensor " + in_quotes(t.name) + " ends at byte offset " +
                        std::to_string(out.data_start_ + t.end) + ", past the end of the " + std::to_string(file_size) +
                        "-byte file");
    }
    expected = t.end;
    out.index_[t.name] = i;
  }
  if (expected != data_size) {
    throw FormatError(f + ": " + std::to_string(data_size - expected) +
                      " trailing bytes after the last tensor at byte offset " +
                      std::to_string(out.data_start_ + expected));
  }
  out.map_ = std::move(map);
  return out;
}

const std::filesystem::path& SafetensorsFile::path() const { return path_; }
const std::vector<TensorInfo>& SafetensorsFile::tensors() const { return tensors_; }
bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return metadata_; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw FormatError(path_.string() + ": no tensor " + in_quotes(name));
  return tensors_[it->second];
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& t = info(name);
  const DtypeInfo* d = nullptr;
  for (const auto& x : kDtypes) {
    if (t.dtype == x.name) d = &x;
  }
  if (!d)
    throw FormatError(path_.string() + ": tensor " + in_quotes(name) + ": dtype " + t.dtype + " is not supported");
  const auto opts = torch::TensorOptions().dtype(d->dtype).device(torch::kCPU);
  if (t.end == t.begin) return torch::empty(t.shape, opts);
  uint8_t* p = map_->data() + data_start_ + t.begin;
  // Views must be aligned to their element size; a misaligned span (legal but unusual) is copied.
  if (reinterpret_cast<uintptr_t>(p) % d->bytes != 0) {
    torch::Tensor out = torch::empty(t.shape, opts);
    std::memcpy(out.data_ptr(), p, t.end - t.begin);
    return out;
  }
  auto keep = map_;
  return torch::from_blob(
      p, t.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

torch::Tensor SafetensorsFile::read_slice(const std::string& name, int64_t dim, int64_t begin, int64_t end) const {
  const TensorInfo& t = info(name);
  const DtypeInfo* d = nullptr;
  for (const auto& x : kDtypes) {
    if (t.dtype == x.name) d = &x;
  }
  const std::string where = path_.string() + ": tensor " + in_quotes(name);
  if (!d) throw FormatError(where + ": dtype " + t.dtype + " is not supported");
  const int64_t rank = static_cast<int64_t>(t.shape.size());
  if (dim < 0 || dim >= rank || begin < 0 || begin > end || end > t.shape[static_cast<size_t>(dim)]) {
    throw ShapeError(where + ": slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of dimension " +
                     std::to_string(dim) + " is outside its shape");
  }
  // The tensor is `outer` runs of shape[dim] x `inner` elements; the slice takes a contiguous part
  // of every run. Sizes are bounded by the validated byte span, so the products do not overflow.
  uint64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= static_cast<uint64_t>(t.shape[static_cast<size_t>(i)]);
  for (int64_t i = dim + 1; i < rank; ++i) inner *= static_cast<uint64_t>(t.shape[static_cast<size_t>(i)]);
  std::vector<int64_t> shape = t.shape;
  shape[static_cast<size_t>(dim)] = end - begin;
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(d->dtype).device(torch::kCPU));
  const uint64_t run = static_cast<uint64_t>(t.shape[static_cast<size_t>(dim)]) * inner * d->bytes;
  const uint64_t part = static_cast<uint64_t>(end - begin) * inner * d->bytes;
  const uint64_t skip = static_cast<uint64_t>(begin) * inner * d->bytes;
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  for (uint64_t o = 0; o < outer && part > 0; ++o) {
    uint64_t offset = data_start_ + t.begin + o * run + skip;
    uint8_t* p = dst + o * part;
    uint64_t left = part;
    while (left > 0) {
      const ssize_t r = ::pread(map_->fd(), p, left, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        throw IoError(where + ": read failed at byte offset " + std::to_string(offset) + ": " +
                      (r < 0 ? errno_text() : std::string("unexpected end of file")));
      p += r;
      offset += static_cast<uint64_t>(r);
      left -= static_cast<uint64_t>(r);
    }
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(const std::filesystem::path& file,
                                                                    std::map<std::string, std::string>* metadata) {
  SafetensorsFile st = SafetensorsFile::open(file);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& t : st.tensors()) out.emplace_back(t.name, st.tensor(t.name));
  if (metadata) *metadata = st.metadata();
  return out;
}

std::string safetensors_dtype(torch::Dtype dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  throw ShapeError(std::string("safetensors: dtype ") + c10::toString(dtype) + " cannot be written");
}

void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string f = file.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !seen.insert(name).second) {
      throw ShapeError(f + ": tensor name " + in_quotes(name) + " is reserved or repeated");
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const std::string dt = safetensors_dtype(t.scalar_type());
    const uint64_t nbytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dt}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(t));
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);

  const std::string tmp = f + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(tmp + ": cannot create: " + errno_text());
  try {
    write_all(fd, len, 8, tmp);
    write_all(fd, h.data(), h.size(), tmp);
    for (const auto& t : data) write_all(fd, t.data_ptr(), t.numel() * t.element_size(), tmp);
    sync_fd(fd, tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw IoError(tmp + ": close failed: " + errno_text());
  }
  try {
    rename_path(tmp, file);
  } catch (const IoError&) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace sf::io
