#include "io/h5_heap_check.hpp"

#include <cstring>
#include <string>

#include "core/error.hpp"

namespace sf::h5 {
uint64_t little_endian(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

bool valid_size(int n) { return n == 2 || n == 4 || n == 8; }

// The superblock at offset 0, 512, 1024, 2048, ...: sizes of offsets and lengths and the base
// address. Sizes stay 0 when none is found (libhdf5 then refuses the file itself).
void read_superblock(GlobalHeaps& h, const uint8_t* data, uint64_t size) {
  for (uint64_t at = 0; at + 48 <= size; at = at == 0 ? 512 : at * 2) {
    if (std::memcmp(data + at, kSignature, sizeof(kSignature)) != 0) continue;
    const uint8_t version = data[at + 8];
    const int offsets = version <= 1 ? data[at + 13] : data[at + 9];
    const int lengths = version <= 1 ? data[at + 14] : data[at + 10];
    if (!valid_size(offsets) || !valid_size(lengths)) return;
    // Base address: version 0 at byte 24, version 1 at byte 28 (after the indexed-storage K and two
    // reserved bytes), versions 2 and 3 at byte 12.
    const uint64_t base_at = at + (version == 0 ? 24 : version == 1 ? 28 : 12);
    h.size_of_offsets = offsets;
    h.size_of_lengths = lengths;
    h.base = base_at + 8 <= size ? little_endian(data + base_at, offsets) : 0;
    return;
  }
}

}  // namespace

std::optional<uint64_t> GlobalHeaps::object_size(uint64_t address, uint64_t index) const {
  const auto c = collections.find(address);
  if (c == collections.end() || index == 0 || index >= c->second.size() || c->second[index] < 0) return std::nullopt;
  return static_cast<uint64_t>(c->second[index]);
}

GlobalHeaps read_global_heaps(const std::filesystem::path& path, const uint8_t* data, uint64_t size) {
  GlobalHeaps heaps;
  read_superblock(heaps, data, size);
  const int L = heaps.size_of_lengths;
  if (L == 0) return heaps;
  const uint64_t collection_header = 8 + static_cast<uint64_t>(L);  // "GCOL", version, 3 reserved, size
  const uint64_t object_header = 8 + static_cast<uint64_t>(L);      // index, refs, 4 reserved, size
  const uint8_t* p = data;
  while (true) {
    const auto left = static_cast<size_t>(size - static_cast<uint64_t>(p - data));
    const void* hit = left >= 4 ? memmem(p, left, "GCOL", 4) : nullptr;
    if (hit == nullptr) return heaps;
    const uint64_t at = static_cast<uint64_t>(static_cast<const uint8_t*>(hit) - data);
    p = data + at + 4;
    if (at + collection_header > size || data[at + 4] != 1 || data[at + 5] != 0 || data[at + 6] != 0 ||
        data[at + 7] != 0)
      continue;
    const uint64_t length = little_endian(data + at + 8, L);
    if (length < collection_header || length > size - at) continue;
    std::vector<int64_t> objects;
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
      if (index > 0) {
        if (objects.size() <= index) objects.resize(index + 1, -1);
        // An object's bytes must lie inside the collection, or a read of it would leave the file.
        objects[index] = object <= end - begin - object_header ? static_cast<int64_t>(object) : -1;
      }
      begin += step;
    }
    if (at >= heaps.base) heaps.collections[at - heaps.base] = std::move(objects);
  }
}

}  // namespace sf::h5
