#pragma once
// GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), versions 2 and 3, little-endian:
//   "GGUF" | version u32 | tensor_count u64 | kv_count u64
//   kv_count x (key string, value type u32, value)        strings are u64 length + bytes
//   tensor_count x (name string, n_dims u32, dims u64[n_dims], ggml type u32, offset u64)
//   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to it.
// The file is memory-mapped and validated before anything is handed out, with the checks llama.cpp
// applies: every length and count fits in the file (overflow-checked), no duplicate keys or tensor
// names, known value and tensor types, at most 4 dims, rows whole blocks, offsets aligned and
// tensors laid out in order (each at the padded end of the previous one) inside the file. Any
// violation is a one-line FormatError naming the file, the key or tensor and the byte offset.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/ggml_quants.hpp"

namespace sf::io {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string gguf_type_name(GgufType t);

// One metadata value. Integers are widened (unsigned to uint_value, signed to int_value), floats
// to double; arrays hold items of one element_type.
struct GgufValue {
  GgufType type = GgufType::kUint8;
  GgufType element_type = GgufType::kUint8;  // arrays only
  uint64_t uint_value = 0;                   // unsigned integers and bool
  int64_t int_value = 0;                     // signed integers
  double float_value = 0;
  std::string string_value;
  std::vector<GgufValue> items;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;  // GGUF order: dims[0] varies fastest
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  std::vector<int64_t> shape() const;  // torch order (dims reversed)
  int64_t numel() const;
};

class MappedFile;

class GgufFile {
 public:
  // IoError when the file cannot be opened; FormatError when it is not valid GGUF.
  static GgufFile open(const std::filesystem::path& file);

  const std::filesystem::path& path() const;
  uint32_t version() const;
  uint64_t file_size() const;
  uint64_t data_offset() const;  // absolute byte offset of the tensor data section
  uint64_t alignment() const;

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const;
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  // Typed reads; FormatError "<file>: metadata 'key': ..." when absent or of another type.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;  // any integer type, non-negative
  double get_float(const std::string& key) const;   // float32 or float64
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;  // array of strings
  std::vector<double> get_floats(const std::string& key) const;        // array of float32/float64
  std::vector<int64_t> get_ints(const std::string& key) const;         // array of any integer type

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
  // The tensor in torch order, on the CPU: F32, F16 and BF16 as zero-copy views of the mapping
  // (writes never reach the file); the quantized types dequantized to float32. FormatError naming
  // the file, tensor and type for types that cannot be decoded.
  torch::Tensor tensor(const std::string& name) const;
  // sha256 of the bytes before the data section (header, metadata and tensor infos).
  std::string header_sha256() const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t data_offset_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// True when `path` names a GGUF file (a regular file whose name ends in .gguf).
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace sf::io
