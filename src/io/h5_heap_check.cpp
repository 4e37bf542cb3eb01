#include "io/h5_heap_check.hpp"

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "io/mapped_file.hpp"

namespace sf::h5 {
namespace {

constexpr uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

uint64_t little_endian(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The superblock's "size of lengths" (bytes of a length field: 2, 4 or 8); 0 when no superblock is
// found at offset 0, 512, 1024, 2048, ... (libhdf5 then refuses the file itself).
int size_of_lengths(const uint8_t* data, uint64_t size) {
  for (uint64_t at = 0; at + 16 <= size; at = at == 0 ? 512 : at * 2) {
    if (std::memcmp(data + at, kSignature, sizeof(kSignature)) != 0) continue;
    const uint8_t version = data[at + 8];
    const uint8_t n = version <= 1 ? data[at + 14] : data[at + 10];
    return n == 2 || n == 4 || n == 8 ? n : 0;
  }
  return 0;
}

}  // namespace

void check_global_heaps(const std::filesystem::path& path) {
  const auto file = io::MappedFile::open(path);
  const uint8_t* data = file->data();
  const uint64_t size = file->size();
  const int L = size_of_lengths(data, size);
  if (L == 0) return;
  const uint64_t collection_header = 8 + static_cast<uint64_t>(L);  // "GCOL", version, 3 reserved, size
  const uint64_t object_header = 8 + static_cast<uint64_t>(L);      // index, refs, 4 reserved, size
  const uint8_t* p = data;
  while (true) {
    const auto left = static_cast<size_t>(size - static_cast<uint64_t>(p - data));
    const void* hit = left >= 4 ? memmem(p, left, "GCOL", 4) : nullptr;
    if (hit == nullptr) return;
    const uint64_t at = static_cast<uint64_t>(static_cast<const uint8_t*>(hit) - data);
    p = data + at + 4;
    if (at + collection_header > size || data[at + 4] != 1 || data[at + 5] != 0 || data[at + 6] != 0 ||
        data[at + 7] != 0)
      continue;
    const uint64_t length = little_endian(data + at + 8, L);
    if (length < collection_header || length > size - at) continue;
    const uint64_t end = at + length;
    for (uint64_t begin = at + collection_header; begin < end;) {
      if (end - begin < object_header) break;  // too small for an object: free space
      const uint64_t index = little_endian(data + begin, 2);
      const uint64_t object = little_endian(data + begin + 8, L);
      // index 0 (free space): its size covers its header; others: header + size rounded up to 8.
      uint64_t step = object;
      if (index > 0) step = object > UINT64_MAX - object_header - 7 ? 0 : object_header + ((object + 7) & ~uint64_t{7});
      if (step == 0 || step > UINT64_MAX - begin)
        throw FormatError(path.string() + ": global heap collection at byte " + std::to_string(at) + ": object " +
                          std::to_string(index) + " at byte " + std::to_string(begin) + " has size " +
                          std::to_string(object) + ", which a reader cannot step over (a corrupt file)");
      begin += step;
    }
  }
}

}  // namespace sf::h5
