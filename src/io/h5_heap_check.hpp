#pragma once
// A check of an HDF5 file's raw bytes before libhdf5 reads it. libhdf5 1.10 (the version the
// supported distributions ship) loops forever decoding a global heap collection (where
// variable-length strings live) in which an object's header gives it no length: the free-space
// object (index 0) of size 0 never advances the decoder (found by the h5 fuzz target; the input is
// tests/fuzz/regressions/h5/global-heap-zero-size-object.h5). File::open runs this check first, so
// such a file is a FormatError naming the byte offset, never a hang.
//
// Every "GCOL" signature in the file with a plausible collection header (version 1, reserved bytes
// zero, a size within the file) is walked object by object as libhdf5 walks it: an object of index
// > 0 takes its header plus its size rounded up to 8 bytes, the free-space object its size. The file
// is refused only when that walk would not end (a step of 0 bytes, or one that wraps around). Stored
// data that happens to contain "GCOL" is walked too; it refuses a readable file only if the bytes
// after it also form such a collection (version byte 1, three zero bytes, a size of at least 32 and
// an object header of size 0 inside it), which no text the project stores is expected to do.
#include <filesystem>

namespace sf::h5 {

// FormatError naming the file, the collection's and the object's byte offsets.
void check_global_heaps(const std::filesystem::path& path);

}  // namespace sf::h5
