#pragma once
// GGML tensor types as GGUF files store them (ggml/include/ggml.h, gguf-py constants.py): the id,
// name, block size (elements) and block bytes of every known type, and dequantisation to float32
// for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (block layouts of
// ggml-quants.c). Types that are known but not dequantised here still have their sizes, so a file
// holding them validates and fails only when such a tensor is read.
#include <cstdint>
#include <optional>
#include <string>

namespace sf::io {

struct GgmlType {
  uint32_t id;
  const char* name;
  uint64_t block_elements;  // elements per block (1 for plain types)
  uint64_t block_bytes;     // bytes per block
  bool dequantizable;       // dequantize() supports it
};

// The type with this id, or nullopt when the id is unknown.
std::optional<GgmlType> ggml_type(uint32_t id);

// Decodes `n` elements (a multiple of the type's block size) of type `type` from `src` into `dst`.
// The caller has checked the byte span: n / block_elements * block_bytes bytes. Throws FormatError
// naming the type when it is not dequantizable.
void dequantize(const GgmlType& type, const uint8_t* src, float* dst, int64_t n);

}  // namespace sf::io
