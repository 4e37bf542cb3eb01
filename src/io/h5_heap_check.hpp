#pragma once
// The global heap collections of an HDF5 file, read from its raw bytes before libhdf5 reads it.
// Variable-length data (the project's strings) lives in these collections; libhdf5 1.10 (the version
// the supported distributions ship) trusts them in two ways that a damaged file turns into a hang or
// a crash, so File::open reads them here first:
//  - it loops forever decoding a collection in which an object's header gives it no length (the
//    free-space object of size 0 never advances the decoder; input
//    tests/fuzz/regressions/h5/global-heap-zero-size-object.h5): refused here with a FormatError
//    naming the byte offsets;
//  - it copies from an invalid pointer when a reference names an object the collection does not
//    hold, and past a buffer when the reference's length is shorter than the object: the table built
//    here is what h5_vlen_check.hpp checks every reference against.
//
// Every "GCOL" signature in the file with a plausible collection header (version 1, reserved bytes
// zero, a size within the file) is walked object by object as libhdf5 walks it: an object of index
// > 0 takes its header plus its size rounded up to 8 bytes, the free-space object its size. Stored
// data that happens to contain "GCOL" is walked too; it refuses a readable file only if the bytes
// after it also form such a collection (version byte 1, three zero bytes, a size of at least 32 and
// an object header of size 0 inside it), which no text the project stores is expected to do, and
// its table entries are never looked up by a valid reference.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "io/h5_raw.hpp"

namespace sf::h5 {

struct GlobalHeaps {
  // Collection byte offset (from `base`) -> object sizes by index; -1 where the collection holds no
  // object of that index (and for index 0, the free space).
  std::map<uint64_t, std::vector<int64_t>> collections;

  // Size of the object `index` of the collection at `address`; nullopt when there is none.
  std::optional<uint64_t> object_size(uint64_t address, uint64_t index) const;
};

// The table, or a FormatError naming the file, the collection's and the object's byte offsets when a
// collection cannot be walked to its end. Empty when the file has no superblock.
GlobalHeaps read_global_heaps(const std::filesystem::path& path, const uint8_t* data, uint64_t size,
                              const Superblock& sb);

}  // namespace sf::h5
