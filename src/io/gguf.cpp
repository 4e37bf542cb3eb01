#include "io/gguf.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "io/mapped_file.hpp"

namespace sf::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;       // nested arrays deeper than this are refused
constexpr uint64_t kMinKvBytes = 13;    // key length 8 + type 4 + 1 byte of value
constexpr uint64_t kMinInfoBytes = 24;  // name length 8 + n_dims 4 + type 4 + offset 8

std::string q(const std::string& s) { return "'" + s + "'"; }

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return true;
  *out = a * b;
  return false;
}

// Bytes of one scalar of this type, 0 for strings and arrays (variable), -1 for unknown types.
int scalar_bytes(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return -1;
}

// A bounds-checked little-endian reader over the mapped bytes. Every failure names the file, what
// was being read and the byte offset.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, std::string file) : data_(data), size_(size), file_(std::move(file)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return file_; }

  [[noreturn]] void fail(const std::string& what, uint64_t at) const {
    throw FormatError(file_ + ": " + what + " at byte offset " + std::to_string(at));
  }

  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > remaining()) {
      fail(what + ": " + std::to_string(n) + " bytes run past the end of the " + std::to_string(size_) + "-byte file",
           pos_);
    }
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t uint(int bytes, const std::string& what) {
    const uint8_t* p = take(static_cast<uint64_t>(bytes), what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(uint(4, what)); }
  uint64_t u64(const std::string& what) { return uint(8, what); }
  std::string string(const std::string& what) {
    const uint64_t at = pos_;
    const uint64_t n = u64(what + " length");
    if (n > remaining()) {
      fail(what + ": string length " + std::to_string(n) + " runs past the end of the " + std::to_string(size_) +
               "-byte file",
           at);
    }
    const uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  std::string file_;
  uint64_t pos_ = 0;
};

GgufValue read_value(Cursor& c, uint32_t type, const std::string& what, int depth) {
  const uint64_t at = c.pos();
  const int nbytes = scalar_bytes(type);
  if (nbytes < 0) c.fail(what + ": unknown value type " + std::to_string(type), at);
  GgufValue v;
  v.type = static_cast<GgufType>(type);
  switch (v.type) {
    case GgufType::kUint8:
    case GgufType::kUint16:
    case GgufType::kUint32:
    case GgufType::kUint64:
      v.uint_value = c.uint(nbytes, what);
      break;
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64: {
      const uint64_t raw = c.uint(nbytes, what);
      const int shift = 64 - 8 * nbytes;  // sign-extend
      v.int_value = static_cast<int64_t>(raw << shift) >> shift;
      break;
    }
    case GgufType::kFloat32: {
      const uint32_t raw = static_cast<uint32_t>(c.uint(4, what));
      float f = 0;
      std::memcpy(&f, &raw, 4);
      v.float_value = f;
      break;
    }
    case GgufType::kFloat64: {
      const uint64_t raw = c.uint(8, what);
      std::memcpy(&v.float_value, &raw, 8);
      break;
    }
    case GgufType::kBool: {
      v.uint_value = c.uint(1, what);
      if (v.uint_value > 1) c.fail(what + ": bool value " + std::to_string(v.uint_value) + " is not 0 or 1", at);
      break;
    }
    case GgufType::kString:
      v.string_value = c.string(what);
      break;
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) c.fail(what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth), at);
      const uint32_t elem = c.u32(what + " element type");
      const int eb = scalar_bytes(elem);
      if (eb < 0) c.fail(what + ": unknown array element type " + std::to_string(elem), at);
      v.element_type = static_cast<GgufType>(elem);
      const uint64_t count_at = c.pos();
      const uint64_t count = c.u64(what + " array length");
      // Each item takes at least this many bytes: the count cannot exceed what is left.
      const uint64_t min_item = eb > 0 ? static_cast<uint64_t>(eb) : elem == 8 ? 8 : 12;
      if (count > c.remaining() / min_item) {
        c.fail(what + ": array length " + std::to_string(count) + " runs past the end of the file", count_at);
      }
      v.items.reserve(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        v.items.push_back(read_value(c, elem, what + "[" + std::to_string(i) + "]", depth + 1));
      }
      break;
    }
  }
  return v;
}

bool is_unsigned(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 || t == GgufType::kUint64;
}
bool is_signed(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 || t == GgufType::kInt64;
}
bool is_float(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

}  // namespace

std::string gguf_type_name(GgufType t) {
  static const char* const names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  const auto i = static_cast<uint32_t>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "type " + std::to_string(i);
}

std::vector<int64_t> GgufTensorInfo::shape() const { return std::vector<int64_t>(dims.rbegin(), dims.rend()); }

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // checked against overflow when the file was opened
  return n;
}

GgufFile GgufFile::open(const std::filesystem::path& file) {
  const std::string f = file.string();
  GgufFile out;
  out.path_ = file;
  out.map_ = MappedFile::open(file);
  Cursor c(out.map_->data(), out.map_->size(), f);

  if (c.remaining() < 4) c.fail("file is " + std::to_string(c.remaining()) + " bytes, too short for the GGUF magic", 0);
  const uint32_t magic = c.u32("magic");
  if (magic != kMagic) c.fail("not a GGUF file (magic is not \"GGUF\")", 0);
  out.version_ = c.u32("version");
  if (out.version_ != 2 && out.version_ != 3) {
    const bool big_endian = out.version_ == 0x02000000u || out.version_ == 0x03000000u;
    c.fail("GGUF version " + std::to_string(out.version_) + (big_endian ? " (a big-endian file)" : "") +
               " is not supported (2 or 3, little-endian)",
           4);
  }
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  if (n_kv > c.remaining() / kMinKvBytes) c.fail("metadata count " + std::to_string(n_kv) + " exceeds the file", 16);
  if (n_tensors > c.remaining() / kMinInfoBytes) {
    c.fail("tensor count " + std::to_string(n_tensors) + " exceeds the file", 8);
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = c.pos();
    std::string key = c.string("metadata key #" + std::to_string(i));
    if (key.empty()) c.fail("metadata key #" + std::to_string(i) + " is empty", at);
    if (out.key_index_.count(key)) c.fail("duplicate metadata key " + q(key), at);
    const std::string what = "metadata " + q(key);
    const uint32_t type = c.u32(what + " type");
    GgufValue v = read_value(c, type, what, 0);
    out.key_index_[key] = out.metadata_.size();
    out.metadata_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = out.find("general.alignment")) {
    if (a->type != GgufType::kUint32 || a->uint_value == 0 || (a->uint_value & (a->uint_value - 1)) != 0) {
      throw FormatError(f + ": metadata 'general.alignment' must be a uint32 power of two, got " +
                        (a->type == GgufType::kUint32 ? std::to_string(a->uint_value) : gguf_type_name(a->type)));
    }
    out.alignment_ = a->uint_value;
  } else {
    out.alignment_ = kDefaultAlignment;
  }

  std::vector<uint64_t> info_at;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = c.pos();
    GgufTensorInfo t;
    t.name = c.string("tensor #" + std::to_string(i) + " name");
    const std::string what = "tensor " + q(t.name);
    if (t.name.empty()) c.fail("tensor #" + std::to_string(i) + " has an empty name", at);
    if (out.tensor_index_.count(t.name)) c.fail("duplicate " + what, at);
    const uint64_t dims_at = c.pos();
    const uint32_t n_dims = c.u32(what + " n_dims");
    if (n_dims > kMaxDims) c.fail(what + ": " + std::to_string(n_dims) + " dims (at most 4)", dims_at);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = c.pos();
      const uint64_t dim = c.u64(what + " dim");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || mul_overflows(numel, dim, &numel) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c.fail(what + ": dims overflow the element count", dim_at);
      }
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t type_at = c.pos();
    const uint32_t type_id = c.u32(what + " type");
    const auto type = ggml_type(type_id);
    if (!type) c.fail(what + ": unknown GGML type " + std::to_string(type_id), type_at);
    t.type = *type;
    const uint64_t row = t.dims.empty() ? 1 : static_cast<uint64_t>(t.dims[0]);
    if (row % type->block_elements != 0) {
      c.fail(what + ": row of " + std::to_string(row) + " elements is not a whole number of " + type->name +
                 " blocks of " + std::to_string(type->block_elements),
             dims_at);
    }
    if (mul_overflows(numel / type->block_elements, type->block_bytes, &t.nbytes)) {
      c.fail(what + ": byte size overflows", dims_at);
    }
    t.offset = c.u64(what + " offset");
    info_at.push_back(c.pos() - 8);
    out.tensor_index_[t.name] = out.tensors_.size();
    out.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.pos();
  const uint64_t pad = (out.alignment_ - header_end % out.alignment_) % out.alignment_;
  out.data_offset_ = header_end + pad;
  const uint64_t file_size = out.map_->size();
  uint64_t expected = 0;  // as llama.cpp: each tensor at the aligned end of the previous one
  for (size_t i = 0; i < out.tensors_.size(); ++i) {
    const GgufTensorInfo& t = out.tensors_[i];
    const std::string what = "tensor " + q(t.name);
    if (t.offset % out.alignment_ != 0) {
      c.fail(what + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                 std::to_string(out.alignment_),
             info_at[i]);
    }
    if (t.offset != expected) {
      c.fail(what + ": data offset " + std::to_string(t.offset) + ", expected " + std::to_string(expected) +
                 (i ? " (the aligned end of tensor " + q(out.tensors_[i - 1].name) + ")" : " (the first tensor)"),
             info_at[i]);
    }
    if (out.data_offset_ > file_size || t.offset > file_size - out.data_offset_ ||
        t.nbytes > file_size - out.data_offset_ - t.offset) {
      throw FormatError(f + ": " + what + ": " + std::to_string(t.nbytes) + " bytes at byte offset " +
                        std::to_string(out.data_offset_ + t.offset) + " run past the end of the " +
                        std::to_string(file_size) + "-byte file");
    }
    const uint64_t padded = t.nbytes + (out.alignment_ - t.nbytes % out.alignment_) % out.alignment_;
    expected = t.offset + padded;
  }
  return out;
}

const std::filesystem::path& GgufFile::path() const { return path_; }
uint32_t GgufFile::version() const { return version_; }
uint64_t GgufFile::file_size() const { return map_->size(); }
uint64_t GgufFile::data_offset() const { return data_offset_; }
uint64_t GgufFile::alignment() const { return alignment_; }
const std::vector<std::pair<std::string, GgufValue>>& GgufFile::metadata() const { return metadata_; }
const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return tensors_; }

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void type_error(const std::string& file, const std::string& key, const std::string& want,
                             const GgufValue& v) {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::kArray) got += " of " + gguf_type_name(v.element_type);
  throw FormatError(file + ": metadata " + q(key) + ": expected " + want + ", got " + got);
}

uint64_t as_uint(const std::string& file, const std::string& key, const GgufValue& v) {
  if (is_unsigned(v.type)) return v.uint_value;
  if (is_signed(v.type) && v.int_value >= 0) return static_cast<uint64_t>(v.int_value);
  if (is_signed(v.type)) {
    throw FormatError(file + ": metadata " + q(key) + ": " + std::to_string(v.int_value) + " is negative");
  }
  type_error(file, key, "a non-negative integer", v);
}

}  // namespace

namespace {

const GgufValue& require(const GgufFile& g, const std::string& key) {
  const GgufValue* v = g.find(key);
  if (!v) throw FormatError(g.path().string() + ": metadata " + q(key) + " is missing");
  return *v;
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (v->type != GgufType::kString) type_error(file, key, "a string", *v);
  return v->string_value;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  return as_uint(file, key, *v);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (!is_float(v->type)) type_error(file, key, "a float", *v);
  return v->float_value;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (v->type != GgufType::kBool) type_error(file, key, "a bool", *v);
  return v->uint_value != 0;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (v->type != GgufType::kArray || v->element_type != GgufType::kString) type_error(file, key, "strings", *v);
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const auto& x : v->items) out.push_back(x.string_value);
  return out;
}

std::vector<double> GgufFile::get_floats(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (v->type != GgufType::kArray || !is_float(v->element_type)) type_error(file, key, "floats", *v);
  std::vector<double> out;
  out.reserve(v->items.size());
  for (const auto& x : v->items) out.push_back(x.float_value);
  return out;
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const GgufValue* v = &require(*this, key);
  const std::string file = path_.string();
  if (v->type != GgufType::kArray || !(is_signed(v->element_type) || is_unsigned(v->element_type))) {
    type_error(file, key, "integers", *v);
  }
  std::vector<int64_t> out;
  out.reserve(v->items.size());
  for (const auto& x : v->items) {
    if (is_unsigned(x.type) && x.uint_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw FormatError(file + ": metadata " + q(key) + ": " + std::to_string(x.uint_value) + " is out of range");
    }
    out.push_back(is_signed(x.type) ? x.int_value : static_cast<int64_t>(x.uint_value));
  }
  return out;
}

torch::Tensor GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) throw FormatError(path_.string() + ": no tensor " + q(name));
  uint8_t* p = map_->data() + data_offset_ + t->offset;
  const std::vector<int64_t> shape = t->shape();
  const auto view = [&](torch::Dtype dtype, size_t esize) {
    const auto opts = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
    if (t->nbytes == 0) return torch::empty(shape, opts);
    if (reinterpret_cast<uintptr_t>(p) % esize != 0) {
      torch::Tensor out = torch::empty(shape, opts);
      std::memcpy(out.data_ptr(), p, t->nbytes);
      return out;
    }
    auto keep = map_;
    return torch::from_blob(
        p, shape, [keep](void*) mutable { keep.reset(); }, opts);
  };
  switch (t->type.id) {
    case 0:
      return view(torch::kFloat32, 4);
    case 1:
      return view(torch::kFloat16, 2);
    case 30:
      return view(torch::kBFloat16, 2);
    default:
      break;
  }
  if (!t->type.dequantizable) {
    throw FormatError(path_.string() + ": tensor " + q(name) + ": GGML type " + t->type.name +
                      " is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
  }
  torch::Tensor out = torch::empty(shape, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  const GgmlType type = t->type;
  const int64_t be = static_cast<int64_t>(type.block_elements), bb = static_cast<int64_t>(type.block_bytes);
  const int64_t blocks = t->numel() / be;
  // Blocks are independent: decode them in parallel, a few thousand per task.
  at::parallel_for(0, blocks, 4096, [&](int64_t begin, int64_t end) {
    dequantize(type, p + begin * bb, dst + begin * be, (end - begin) * be);
  });
  return out;
}

std::string GgufFile::header_sha256() const {
  const uint64_t n = std::min(data_offset_, map_->size());
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(map_->data()), static_cast<size_t>(n)));
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext == ".gguf" && !std::filesystem::is_directory(path);
}

}  // namespace sf::io
