#include "io/h5_heap_check.hpp"

#include <cstring>
#include <string>

#include "core/error.hpp"

namespace sf::h5 {
std::optional<uint64_t> GlobalHeaps::object_size(uint64_t address, uint64_t index) const {
  const auto c = collections.find(address);
  if (c == collections.end() || index == 0 || index >= c->second.size() || c->second[index] < 0) return std::nullopt;
  return static_cast<uint64_t>(c->second[index]);
}

GlobalHeaps read_global_heaps(const std::filesystem::path& path, const uint8_t* data, uint64_t size,
                              const Superblock& sb) {
  GlobalHeaps heaps;
  const int L = sb.size_of_lengths;
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
    if (at >= sb.base) heaps.collections[at - sb.base] = std::move(objects);
  }
}

}  // namespace sf::h5
