#include "io/h5_group_check.hpp"

#include <cstring>
#include <set>
#include <string>
#include <utility>

namespace sf::h5 {
namespace {

constexpr size_t kMaxNameShown = 64;  // bytes of a link name an error message shows
constexpr int kMaxDepth = 256;        // groups nested deeper than this are refused (the walk recurses)

struct LocalHeap {
  const uint8_t* data;
  uint64_t size;
};

// A link name for an error message: printable ASCII, at most kMaxNameShown bytes.
std::string shown(const char* name) {
  std::string out;
  for (const char* c = name; *c != '\0' && out.size() < kMaxNameShown; ++c) out += *c >= 0x20 && *c < 0x7f ? *c : '?';
  return out;
}

class Walk {
 public:
  explicit Walk(const Raw& r) : r_(r), O_(r.sb.size_of_offsets), L_(r.sb.size_of_lengths) {}

  // The object whose header is at `address`, reached as `where`, and every group below it.
  void object(uint64_t address, const std::string& where, int depth) {
    if (address == kUndefinedAddress || !headers_.insert(address).second) return;
    if (depth > kMaxDepth) r_.fail(where, "groups nested more than " + std::to_string(kMaxDepth) + " deep");
    for (const Message& m : header_messages(r_, address, where)) {
      if (m.type == kSymbolTableMessage) {
        if (m.size < 2 * static_cast<uint64_t>(O_)) r_.fail(where, "its symbol table message is too short");
        table(r_.offset(m.body), r_.offset(m.body + O_), where, depth);
      } else if (m.type == kLinkMessage) {
        link(m, where, depth);
      }
    }
  }

  // The symbol table with the B-tree at `btree` and the local heap at `heap_address`.
  void table(uint64_t btree, uint64_t heap_address, const std::string& where, int depth) {
    if (!tables_.insert({btree, heap_address}).second) return;
    const LocalHeap heap = local_heap(heap_address, where);
    node(heap, btree, -1, where, depth);
  }

  uint64_t names() const { return names_; }

 private:
  LocalHeap local_heap(uint64_t address, const std::string& where) const {
    // "HEAP", version 0, 3 reserved bytes, data segment size, free list offset, data segment address.
    const uint8_t* h = r_.at(address, 8 + 2 * static_cast<uint64_t>(L_) + O_, where + ": local heap");
    if (std::memcmp(h, "HEAP", 4) != 0 || h[4] != 0)
      r_.fail(where, "its symbol table names a local heap at address " + std::to_string(address) +
                         " where there is none (a damaged file)");
    const uint64_t size = r_.length(h + 8);
    return {r_.at(r_.offset(h + 8 + 2 * L_), size, where + ": local heap data segment"), size};
  }

  // The NUL-terminated name at `offset` of the heap.
  const char* name(const LocalHeap& heap, uint64_t offset, const std::string& where, const std::string& which) const {
    if (offset >= heap.size || std::memchr(heap.data + offset, 0, heap.size - offset) == nullptr)
      r_.fail(where, which + " names heap offset " + std::to_string(offset) +
                         ", where no NUL-terminated name lies inside the local heap's " + std::to_string(heap.size) +
                         " bytes (a damaged file)");
    return reinterpret_cast<const char*>(heap.data + offset);
  }

  // A group B-tree node: "TREE", type 0, level, entries used, left and right siblings, then keys (heap
  // offsets) and children interleaved, one key more than children. `level` is the level the parent
  // expects (-1 at the root of the tree). A node reached again is not walked again.
  void node(const LocalHeap& heap, uint64_t address, int level, const std::string& where, int depth) {
    if (!nodes_.insert(address).second) return;
    const std::string what = "the group B-tree node at address " + std::to_string(address);
    const uint8_t* n = r_.at(address, 8 + 2 * static_cast<uint64_t>(O_), where + ": " + what);
    if (std::memcmp(n, "TREE", 4) != 0 || n[4] != 0)
      r_.fail(where, what + " is not a group B-tree node (a damaged file)");
    const int own_level = n[5];
    if (level >= 0 && own_level != level)
      r_.fail(where, what + " has level " + std::to_string(own_level) + " where its parent expects " +
                         std::to_string(level) + " (a damaged file)");
    const uint64_t children = little_endian(n + 6, 2);
    const uint64_t pair = static_cast<uint64_t>(L_) + O_;
    const uint8_t* body = r_.at(address + 8 + 2 * static_cast<uint64_t>(O_), children * pair + L_, where + ": " + what);
    for (uint64_t i = 0; i <= children; ++i)
      name(heap, r_.length(body + i * pair), where, what + ": key " + std::to_string(i));
    for (uint64_t i = 0; i < children; ++i) {
      const uint64_t child = r_.offset(body + i * pair + L_);
      if (own_level > 0)
        node(heap, child, own_level - 1, where, depth);
      else
        symbols(heap, child, where, depth);
    }
  }

  // A symbol table node: "SNOD", version 1, a reserved byte, the number of entries, then entries
  // (link name offset, object header address, cache type, 4 reserved bytes, 16 bytes of scratch).
  // The group an entry names is walked through its object header's symbol table message, which is
  // what libhdf5 reads; the copy of it an entry may cache in its scratch pad is not followed.
  void symbols(const LocalHeap& heap, uint64_t address, const std::string& where, int depth) {
    if (!nodes_.insert(address).second) return;
    const std::string what = "the symbol table node at address " + std::to_string(address);
    const uint8_t* s = r_.at(address, 8, where + ": " + what);
    if (std::memcmp(s, "SNOD", 4) != 0 || s[4] != 1)
      r_.fail(where, what + " is not a symbol table node (a damaged file)");
    const uint64_t count = little_endian(s + 6, 2);
    if (r_.sb.max_symbols > 0 && count > r_.sb.max_symbols)
      r_.fail(where, what + " says it holds " + std::to_string(count) + " entries, more than the " +
                         std::to_string(r_.sb.max_symbols) + " the superblock allows (a damaged file)");
    const uint64_t entry = 2 * static_cast<uint64_t>(O_) + 24;
    const uint8_t* e = r_.at(address + 8, count * entry, where + ": " + what);
    for (uint64_t i = 0; i < count; ++i, e += entry) {
      const char* link = name(heap, r_.offset(e), where, what + ": entry " + std::to_string(i));
      ++names_;
      const std::string child = (where == "/" ? "/" : where + "/") + shown(link);
      object(r_.offset(e + O_), child, depth + 1);
    }
  }

  // A link message (version 1): flags, [link type], [creation order], [character set], the name's
  // length and the name, then for a hard link (type 0) the object header's address.
  void link(const Message& m, const std::string& where, int depth) {
    const uint8_t* b = m.body;
    const uint64_t end = m.size;
    if (end < 2 || b[0] != 1) r_.fail(where, "a link message has an unknown version (a damaged file)");
    const unsigned flags = b[1];
    uint64_t at = 2;
    unsigned type = 0;
    if ((flags & 0x08) != 0) type = at < end ? b[at++] : 0xff;
    if ((flags & 0x04) != 0) at += 8;
    if ((flags & 0x10) != 0) at += 1;
    const uint64_t width = uint64_t{1} << (flags & 3);
    if (at > end || end - at < width) r_.fail(where, "a link message is too short");
    const uint64_t length = little_endian(b + at, static_cast<int>(width));
    at += width;
    if (length > end - at) r_.fail(where, "a link message's name runs past its end");
    const std::string link(reinterpret_cast<const char*>(b + at), length);
    at += length;
    ++names_;
    if (type != 0) return;  // soft, external or user-defined: no object here
    if (end - at < static_cast<uint64_t>(O_)) r_.fail(where, "a hard link message has no address");
    object(r_.offset(b + at), (where == "/" ? "/" : where + "/") + shown(link.c_str()), depth + 1);
  }

  const Raw& r_;
  const int O_;
  const int L_;
  std::set<uint64_t> headers_;
  std::set<std::pair<uint64_t, uint64_t>> tables_;
  std::set<uint64_t> nodes_;  // B-tree and symbol table nodes walked
  uint64_t names_ = 0;        // link names checked
};

}  // namespace

uint64_t check_group_names(const std::filesystem::path& path, const uint8_t* data, uint64_t size,
                           const Superblock& sb) {
  if (sb.size_of_offsets == 0) return 0;
  const Raw r{path, data, size, sb};
  Walk walk(r);
  if (sb.root_btree != kUndefinedAddress && sb.root_heap != kUndefinedAddress)
    walk.table(sb.root_btree, sb.root_heap, "/", 0);
  walk.object(sb.root, "/", 0);
  return walk.names();
}

}  // namespace sf::h5
