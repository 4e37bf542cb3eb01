#include "io/h5_raw.hpp"

#include <cstring>
#include <set>
#include <utility>

#include "core/error.hpp"

namespace sf::h5 {
namespace {

constexpr uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
constexpr uint64_t kDefaultGroupLeafK = 4;  // libhdf5's, for superblocks that do not store it

bool valid_size(int n) { return n == 2 || n == 4 || n == 8; }

// An address field: all bits set means "undefined" whatever its width.
uint64_t address_at(const uint8_t* p, int bytes) {
  const uint64_t v = little_endian(p, bytes);
  return bytes < 8 && v == (uint64_t{1} << (8 * bytes)) - 1 ? kUndefinedAddress : v;
}

}  // namespace

uint64_t little_endian(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Superblock read_superblock(const uint8_t* data, uint64_t size) {
  Superblock sb;
  for (uint64_t at = 0; at + 48 <= size; at = at == 0 ? 512 : at * 2) {
    if (std::memcmp(data + at, kSignature, sizeof(kSignature)) != 0) continue;
    const uint8_t* s = data + at;
    const int version = s[8];
    const int O = version <= 1 ? s[13] : s[9];
    const int L = version <= 1 ? s[14] : s[10];
    if (!valid_size(O) || !valid_size(L)) return sb;
    if (version <= 1) {
      // Version 0: addresses from byte 24 (base, free space, end of file, driver information), then
      // the root group's symbol table entry (link name offset, object header address, cache type,
      // 4 reserved bytes, 16 bytes of scratch: B-tree and local heap addresses for cache type 1).
      // Version 1 stores the indexed-storage K and two reserved bytes before the addresses.
      const uint64_t first = version == 0 ? 24 : 28;
      const uint64_t entry = first + 4 * static_cast<uint64_t>(O);
      if (entry + 2 * static_cast<uint64_t>(O) + 8 + 2 * static_cast<uint64_t>(O) > size - at) return sb;
      sb.base = little_endian(s + first, O);
      sb.root = address_at(s + entry + O, O);
      if (little_endian(s + entry + 2 * O, 4) == 1) {
        sb.root_btree = address_at(s + entry + 2 * O + 8, O);
        sb.root_heap = address_at(s + entry + 3 * O + 8, O);
      }
      sb.max_symbols = 2 * little_endian(s + 16, 2);
    } else {
      // Versions 2 and 3: base, superblock extension, end of file, root group object header.
      sb.base = little_endian(s + 12, O);
      sb.root = address_at(s + 12 + 3 * O, O);
      sb.max_symbols = address_at(s + 12 + O, O) == kUndefinedAddress ? 2 * kDefaultGroupLeafK : 0;
    }
    sb.size_of_offsets = O;
    sb.size_of_lengths = L;
    return sb;
  }
  return sb;
}

void Raw::fail(const std::string& what, const std::string& why) const {
  throw FormatError(path.string() + ": " + what + ": " + why);
}

const uint8_t* Raw::at(uint64_t address, uint64_t n, const std::string& what) const {
  const uint64_t offset = address + sb.base;
  if (offset < address || offset > size || n > size - offset)
    fail(what, std::to_string(n) + " bytes at address " + std::to_string(address) + " run past the end of the file (" +
                   std::to_string(size) + " bytes)");
  return data + offset;
}

std::vector<Message> header_messages(const Raw& r, uint64_t address, const std::string& what) {
  const uint8_t* p = r.at(address, 6, what + ": object header");
  const bool v2 = std::memcmp(p, "OHDR", 4) == 0;
  if (!v2 && p[0] != 1) r.fail(what, "object header at address " + std::to_string(address) + " has an unknown version");
  uint64_t start = 0;
  uint64_t length = 0;
  unsigned header_flags = 0;
  if (v2) {
    header_flags = p[5];
    const uint64_t size_bytes = uint64_t{1} << (header_flags & 3);
    const uint64_t skip = 6 + ((header_flags & 0x20) != 0 ? 16 : 0) + ((header_flags & 0x10) != 0 ? 4 : 0);
    length = little_endian(r.at(address + skip, size_bytes, what + ": object header"), static_cast<int>(size_bytes));
    start = address + skip + size_bytes;
  } else {
    length = little_endian(r.at(address, 16, what + ": object header") + 8, 4);
    start = address + 16;
  }
  const uint64_t message_header = v2 ? 4 + ((header_flags & 0x04) != 0 ? 2 : 0) : 8;

  std::vector<Message> out;
  std::vector<std::pair<uint64_t, uint64_t>> chunks = {{start, length}};
  std::set<uint64_t> seen = {start};
  for (size_t c = 0; c < chunks.size(); ++c) {
    const auto [begin, n] = chunks[c];
    const uint8_t* chunk = r.at(begin, n, what + ": object header chunk");
    for (uint64_t pos = 0; n - pos >= message_header;) {
      const uint8_t* m = chunk + pos;
      const unsigned type = v2 ? m[0] : static_cast<unsigned>(little_endian(m, 2));
      const uint64_t size = little_endian(m + (v2 ? 1 : 2), 2);
      const unsigned flags = v2 ? m[3] : m[4];
      pos += message_header;
      if (size > n - pos)
        r.fail(what, "a message of the object header chunk at address " + std::to_string(begin) +
                         " runs past the chunk's end");
      out.push_back({type, flags, chunk + pos, size});
      if (type == kContinuationMessage) {
        const int sa = r.sb.size_of_offsets;
        if (size < static_cast<uint64_t>(sa + r.sb.size_of_lengths))
          r.fail(what, "a continuation message is too short");
        uint64_t next = r.offset(chunk + pos);
        uint64_t next_length = r.length(chunk + pos + sa);
        if (v2) {  // "OCHK", messages, checksum
          if (next_length < 8 || std::memcmp(r.at(next, 4, what + ": object header chunk"), "OCHK", 4) != 0)
            r.fail(what, "the continuation chunk at address " + std::to_string(next) + " has no OCHK signature");
          next += 4;
          next_length -= 8;
        }
        if (!seen.insert(next).second || chunks.size() >= 4096)
          r.fail(what, "the object header's continuation chunks form a loop");
        chunks.emplace_back(next, next_length);
      }
      pos += size;
    }
  }
  return out;
}

}  // namespace sf::h5
