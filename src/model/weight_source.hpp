#pragma once
// Where a model's weights come from: named tensors with a dtype and shape, read whole or as a
// slice along one dimension. CausalLM::from_source builds a model from any source; a model folder
// of safetensors files (one file, or shards named by model.safetensors.index.json) is one.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace sf::model {

struct WeightInfo {
  std::string dtype;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::string file;  // where it is stored, for error messages
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // What the source is (a folder), for error messages.
  virtual std::string describe() const = 0;
  // Every tensor name, sorted.
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual WeightInfo info(const std::string& name) const = 0;  // FormatError when absent
  // The whole tensor on the CPU, zero-copy where the source allows it.
  virtual torch::Tensor read(const std::string& name) const = 0;
  // Elements [begin, end) of dimension `dim` and all of the others, as a new CPU tensor: only those
  // bytes are read.
  virtual torch::Tensor read_slice(const std::string& name, int64_t dim, int64_t begin, int64_t end) const = 0;
};

// A Hugging Face model folder: `dir/model.safetensors`, or the shards named by
// `dir/model.safetensors.index.json` (each shard file must hold exactly the tensors the index
// gives it). Files are memory-mapped and validated when opened.
class SafetensorsSource : public WeightSource {
 public:
  static std::unique_ptr<SafetensorsSource> open(const std::filesystem::path& dir);

  std::string describe() const override;
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override;
  WeightInfo info(const std::string& name) const override;
  torch::Tensor read(const std::string& name) const override;
  torch::Tensor read_slice(const std::string& name, int64_t dim, int64_t begin, int64_t end) const override;

 private:
  const io::SafetensorsFile& file_of(const std::string& name) const;
  std::filesystem::path dir_;
  std::vector<io::SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace sf::model
