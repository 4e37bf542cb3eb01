#pragma once
// Every link name a group keeps in a local heap, checked on an HDF5 file's raw bytes before libhdf5
// reads one.
//
// A group in HDF5's original format (a symbol table: a version 1 B-tree of symbol table nodes, and a
// local heap holding the link names; what libhdf5 1.10 and h5py write by default) names each link by
// an offset into its local heap. libhdf5 1.10 copies the name at that offset with strdup, so a name
// that is not NUL-terminated inside the heap makes it read past the heap's buffer (ASan
// heap-buffer-overflow in H5G__ent_to_link under H5Lvisit; h5 fuzz finding, input
// tests/fuzz/regressions/h5/local-heap-name-unterminated.h5), and it decodes as many entries as a
// symbol table node says it holds into an array sized by the superblock's group leaf node K.
//
// From the root group on (its object header, and the symbol table the superblock caches for it),
// every object reachable through symbol tables and hard-link messages is walked, through each
// object's own header as libhdf5 reads it (not the copies symbol table entries cache):
//  - a symbol table's local heap lies inside the file;
//  - each B-tree node is a group node of the level its parent expects (so the walk ends), and each of
//    its keys names a NUL-terminated string inside the heap;
//  - each symbol table node holds at most 2 × K entries (when the superblock gives K), all inside the
//    file, each naming a NUL-terminated string inside the heap.
// Links kept in dense storage (a fractal heap) are read by libhdf5 with their stored lengths and are
// not walked into; what lies below them is left to the probe's child (h5_probe.hpp).
// Returns how many link names were checked (symbol table entries and link messages); a failure is one
// FormatError naming the file, the group and what is wrong where.
#include <cstdint>
#include <filesystem>

#include "io/h5_raw.hpp"

namespace sf::h5 {

uint64_t check_group_names(const std::filesystem::path& path, const uint8_t* data, uint64_t size, const Superblock& sb);

}  // namespace sf::h5
