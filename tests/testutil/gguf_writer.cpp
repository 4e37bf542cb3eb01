#include "testutil/gguf_writer.hpp"

#include <cstring>

namespace sf::test {

namespace {

std::string le(uint64_t v, int bytes) {
  std::string out(static_cast<size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) out[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

uint64_t pad(uint64_t n, uint64_t a) { return (a - n % a) % a; }

}  // namespace

std::string gguf_u32(uint32_t v) { return le(v, 4); }
std::string gguf_u64(uint64_t v) { return le(v, 8); }
std::string gguf_f32(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, 4);
  return le(bits, 4);
}
std::string gguf_str(const std::string& s) { return le(s.size(), 8) + s; }
std::string gguf_array(uint32_t element_type, const std::vector<std::string>& items) {
  std::string out = le(element_type, 4) + le(items.size(), 8);
  for (const auto& i : items) out += i;
  return out;
}

GgufBuilder& GgufBuilder::kv(const std::string& key, uint32_t type, const std::string& value) {
  kvs_.emplace_back(key, le(type, 4) + value);
  return *this;
}
GgufBuilder& GgufBuilder::u32(const std::string& key, uint32_t v) { return kv(key, 4, gguf_u32(v)); }
GgufBuilder& GgufBuilder::f32(const std::string& key, float v) { return kv(key, 6, gguf_f32(v)); }
GgufBuilder& GgufBuilder::boolean(const std::string& key, bool v) { return kv(key, 7, std::string(1, v ? 1 : 0)); }
GgufBuilder& GgufBuilder::str(const std::string& key, const std::string& v) { return kv(key, 8, gguf_str(v)); }
GgufBuilder& GgufBuilder::strings(const std::string& key, const std::vector<std::string>& v) {
  std::vector<std::string> items;
  for (const auto& s : v) items.push_back(gguf_str(s));
  return kv(key, 9, gguf_array(8, items));
}
GgufBuilder& GgufBuilder::i32s(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<std::string> items;
  for (int32_t x : v) items.push_back(le(static_cast<uint32_t>(x), 4));
  return kv(key, 9, gguf_array(5, items));
}
GgufBuilder& GgufBuilder::f32s(const std::string& key, const std::vector<float>& v) {
  std::vector<std::string> items;
  for (float x : v) items.push_back(gguf_f32(x));
  return kv(key, 9, gguf_array(6, items));
}
GgufBuilder& GgufBuilder::tensor(GgufTensorSpec t) {
  tensors_.push_back(std::move(t));
  return *this;
}
GgufBuilder& GgufBuilder::f32_tensor(const std::string& name, const std::vector<float>& values, uint64_t rows,
                                     uint64_t cols) {
  GgufTensorSpec t;
  t.name = name;
  t.dims = cols ? std::vector<uint64_t>{cols, rows} : std::vector<uint64_t>{rows};
  t.data.resize(values.size() * 4);
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return tensor(std::move(t));
}

std::string GgufBuilder::build() const {
  std::string out = le(magic, 4) + le(version, 4) + le(tensor_count.value_or(tensors_.size()), 8) +
                    le(kv_count.value_or(kvs_.size()), 8);
  for (const auto& [key, value] : kvs_) out += gguf_str(key) + value;
  uint64_t offset = 0;
  std::string data;
  for (const auto& t : tensors_) {
    out += gguf_str(t.name) + le(t.dims.size(), 4);
    for (uint64_t d : t.dims) out += le(d, 8);
    out += le(t.type, 4) + le(t.offset.value_or(offset), 8);
    data += t.data + std::string(pad(t.data.size(), alignment), '\0');
    offset += t.data.size() + pad(t.data.size(), alignment);
  }
  out += std::string(pad(out.size(), alignment), '\0');
  return out + data;
}

}  // namespace sf::test
