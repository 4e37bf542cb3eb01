// safetensors: the 8-byte header length, the JSON header (dtypes, shapes, offsets, metadata) and
// every tensor view of a validated file.
#include "io/safetensors.hpp"

#include "fuzz/targets/targets.hpp"

namespace sf::fuzz {

void safetensors(const uint8_t* data, size_t size) {
  const auto file = scratch_file("input.safetensors", data, size);
  const io::SafetensorsFile f = io::SafetensorsFile::open(file);
  for (const auto& info : f.tensors()) {
    const torch::Tensor t = f.tensor(info.name);
    if (t.numel() > 0) (void)t.reshape({-1})[t.numel() - 1].item<double>();  // the last byte is readable
  }
  (void)f.metadata();
}

}  // namespace sf::fuzz
