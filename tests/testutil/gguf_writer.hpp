#pragma once
// A GGUF writer for tests: valid files by default (layout as gguf-py writes it), with every field
// overridable so that tests can build corrupted files.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sf::test {

// Little-endian encodings of GGUF values.
std::string gguf_u32(uint32_t v);
std::string gguf_u64(uint64_t v);
std::string gguf_f32(float v);
std::string gguf_str(const std::string& s);  // u64 length + bytes
// An array value: element type, count, then the encoded items.
std::string gguf_array(uint32_t element_type, const std::vector<std::string>& encoded_items);

struct GgufTensorSpec {
  std::string name;
  uint32_t type = 0;               // GGML type id (0 = F32)
  std::vector<uint64_t> dims;      // GGUF order (dims[0] fastest)
  std::string data;                // the tensor's bytes
  std::optional<uint64_t> offset;  // default: the aligned end of the previous tensor
};

class GgufBuilder {
 public:
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  uint64_t alignment = 32;                         // used for the layout (write general.alignment to declare another)
  std::optional<uint64_t> tensor_count, kv_count;  // default: the real counts

  // A key with a raw value type and encoded value.
  GgufBuilder& kv(const std::string& key, uint32_t type, const std::string& value);
  GgufBuilder& u32(const std::string& key, uint32_t v);
  GgufBuilder& f32(const std::string& key, float v);
  GgufBuilder& boolean(const std::string& key, bool v);
  GgufBuilder& str(const std::string& key, const std::string& v);
  GgufBuilder& strings(const std::string& key, const std::vector<std::string>& v);
  GgufBuilder& i32s(const std::string& key, const std::vector<int32_t>& v);
  GgufBuilder& f32s(const std::string& key, const std::vector<float>& v);
  GgufBuilder& tensor(GgufTensorSpec t);
  // An F32 tensor with torch-order shape [rows, cols] (or [n] when cols == 0).
  GgufBuilder& f32_tensor(const std::string& name, const std::vector<float>& values, uint64_t rows, uint64_t cols = 0);

  std::string build() const;

 private:
  std::vector<std::pair<std::string, std::string>> kvs_;  // key, type + value bytes
  std::vector<GgufTensorSpec> tensors_;
};

}  // namespace sf::test
