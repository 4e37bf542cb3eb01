#pragma once
// An HDF5 file's raw bytes as its file format specification lays them out: the superblock, addresses
// and object header messages. The checks that must run before libhdf5 follows a structure of a file
// from outside (h5_heap_check.hpp, h5_group_check.hpp, h5_vlen_check.hpp) read the file through this;
// every read is bounds-checked and a failure is one FormatError naming the file and the structure.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sf::h5 {

constexpr uint64_t kUndefinedAddress = UINT64_MAX;

// The unsigned integer of `bytes` (1 to 8) bytes at p, least significant first: HDF5's byte order for
// every field of its file format.
uint64_t little_endian(const uint8_t* p, int bytes);

struct Superblock {
  int size_of_offsets = 0;            // bytes of an address in the file (2, 4 or 8); 0: no superblock found
  int size_of_lengths = 0;            // bytes of a length field
  uint64_t base = 0;                  // file offset that addresses are relative to
  uint64_t root = kUndefinedAddress;  // the root group's object header
  // Versions 0 and 1 cache the root group's symbol table (its B-tree and local heap) in the
  // superblock; libhdf5 may follow these instead of the object header's message.
  uint64_t root_btree = kUndefinedAddress;
  uint64_t root_heap = kUndefinedAddress;
  // Most entries a symbol table node holds, 2 × the group leaf node K (versions 0 and 1 store K; later
  // versions keep the default of 4 unless a superblock extension changes it: 0 = not known).
  uint64_t max_symbols = 0;
};

// The superblock at offset 0, 512, 1024, 2048, ...; sizes stay 0 when none is found (libhdf5 then
// refuses the file itself).
Superblock read_superblock(const uint8_t* data, uint64_t size);

// The file's raw bytes, and errors that name the file.
struct Raw {
  const std::filesystem::path& path;
  const uint8_t* data;
  uint64_t size;
  const Superblock& sb;

  [[noreturn]] void fail(const std::string& what, const std::string& why) const;
  // n bytes at `address` (relative to the base address), inside the file.
  const uint8_t* at(uint64_t address, uint64_t n, const std::string& what) const;
  uint64_t offset(const uint8_t* p) const { return little_endian(p, sb.size_of_offsets); }
  uint64_t length(const uint8_t* p) const { return little_endian(p, sb.size_of_lengths); }
};

// One message of an object header.
struct Message {
  unsigned type;
  unsigned flags;
  const uint8_t* body;
  uint64_t size;
};

constexpr unsigned kSymbolTableMessage = 0x11;
constexpr unsigned kLinkMessage = 0x06;
constexpr unsigned kAttributeMessage = 0x0C;
constexpr unsigned kContinuationMessage = 0x10;

// The messages of the object header at `address`: version 1 or 2, following continuation messages.
std::vector<Message> header_messages(const Raw& r, uint64_t address, const std::string& what);

}  // namespace sf::h5
