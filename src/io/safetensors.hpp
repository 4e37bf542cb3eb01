#pragma once
// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
// N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}, then
// the tensor bytes. Files are memory-mapped and validated by the Hugging Face rules before any
// tensor is handed out: header length <= 100 MB and inside the file, well-formed JSON, each
// tensor's span = numel x dtype size (overflow-checked), spans contiguous from 0 in offset order,
// and the last span ending exactly at the end of the file. Any violation is a one-line FormatError
// naming the file, the tensor and the byte offset.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sf::io {

struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class MappedFile;

class SafetensorsFile {
 public:
  // Maps and validates the file. IoError when it cannot be opened; FormatError when invalid.
  static SafetensorsFile open(const std::filesystem::path& file);

  const std::filesystem::path& path() const;
  // Tensors in file (offset) order.
  const std::vector<TensorInfo>& tensors() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // FormatError when absent
  const std::map<std::string, std::string>& metadata() const;

  // A CPU tensor viewing the mapped bytes (zero-copy; the tensor keeps the mapping alive).
  // Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL; anything else is a
  // FormatError naming the tensor. Writes to the view never reach the file (private mapping).
  torch::Tensor tensor(const std::string& name) const;
  // A new CPU tensor holding elements [begin, end) of dimension `dim` (rows: 0, columns: 1 of a
  // matrix) and all of the other dimensions, read from the file with pread: only the slice's bytes
  // enter this process's memory, the mapping is not touched. ShapeError for a range outside the
  // shape; IoError when the read fails.
  torch::Tensor read_slice(const std::string& name, int64_t dim, int64_t begin, int64_t end) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> map_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_start_ = 0;
};

// All tensors of one file, in file order (zero-copy views).
std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(
    const std::filesystem::path& file, std::map<std::string, std::string>* metadata = nullptr);

// Writes tensors (any device; copied to CPU, contiguous) in the given order. Written to a temporary
// file beside `file`, fsynced and renamed, so readers never see a partial file. Duplicate names,
// the reserved name "__metadata__" and unsupported dtypes are ShapeErrors; I/O failures IoErrors.
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors name of a torch dtype ("F32", ...); ShapeError when it has none here.
std::string safetensors_dtype(torch::Dtype dtype);

}  // namespace sf::io
