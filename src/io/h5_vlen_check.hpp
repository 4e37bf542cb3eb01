#pragma once
// Every reference that an HDF5 file's variable-length data (the project's strings) keeps into its
// global heap, checked against the heap before libhdf5 follows one.
//
// libhdf5 1.10 (the version the supported distributions ship) reads a reference (length, collection
// address, object index) without checking it: an index the collection does not hold makes H5HG_read
// copy from an invalid pointer (SIGSEGV; found by the h5 fuzz target, input
// tests/fuzz/regressions/h5/global-heap-bad-object-index.h5), and a length shorter than the object
// makes it copy past the buffer it allocated. No call of libhdf5's API tells such a file apart, so
// File::open (in the child process of h5_probe.hpp), after opening the file and before anything is
// read from it, finds each object whose
// attributes or data hold variable-length elements through the API (links, headers and chunk indexes
// only, never the heap), reads their stored references from the file's raw bytes, and checks each:
// null, or an object the collection holds whose size is the length times the element size.
//
// The attributes are opened one by one by the names their messages give, so that each message is
// decoded before libhdf5 builds its table of all of them (1.10 frees a table with empty slots when one
// fails to decode: SIGSEGV; input tests/fuzz/regressions/h5/attribute-message-undecodable.h5); an
// attribute libhdf5 cannot decode, one stored twice, or a count that differs from the header's is a
// FormatError.
//
// Where the references are stored:
//  - attributes: in their attribute message in the object header (versions 1 and 2, with
//    continuation chunks; attribute message versions 1 to 3);
//  - datasets: in their chunks (raw, or through the deflate, shuffle and fletcher32 filters undone
//    here) or their contiguous storage.
// Variable-length data kept anywhere else (dense attribute storage, compact or virtual datasets,
// other filters, nested in compound or array types) cannot be checked and is refused: the project
// never writes it. The FormatError names the file, the attribute or dataset, the element and what is
// wrong with its reference.
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/h5_heap_check.hpp"

namespace sf::h5 {

// `file` is the open file whose raw bytes are data[0, size); `names` its objects past the root, as
// hard_link_names (h5_links.hpp) lists them.
void check_vlen_references(hid_t file, const std::vector<std::string>& names, const std::filesystem::path& path,
                           const uint8_t* data, uint64_t size, const Superblock& sb, const GlobalHeaps& heaps);

}  // namespace sf::h5
