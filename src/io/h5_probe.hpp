#pragma once
// An HDF5 file from outside, checked and read in a child process before this process reads it.
//
// libhdf5 1.10 (the version the supported distributions ship) crashes on many kinds of damaged file:
// the h5 fuzz target found a loop in global heap decoding, reads through invalid heap references,
// a half-built attribute table freed, attribute values copied past their buffer, a division by a
// chunk dimension of 0 when a dataset is opened, minutes spent reading rows of a damaged extent, link
// names read past their local heap, and objects a damaged group hides from listing but not from
// opening by name (inputs in tests/fuzz/regressions/h5). Most have exact checks on the raw bytes
// (h5_heap_check.hpp, h5_group_check.hpp, h5_vlen_check.hpp, h5_links.hpp), but no list of such
// checks can be complete. So File::open first forks a child that opens the file read-only, runs
// check_vlen_references, and reads what the project's readers read: every object, every attribute,
// every dataset (whole, or its first and last rows past 64 MiB in memory), saying over a pipe before
// each step what it reads. The file is opened here only if the child got to the end; else File::open
// throws the child's FormatError, or one naming the file, the step and how the child ended (signal,
// exit status, no word for 20 s, or no end within a minute plus a second per 50 MB).
//
// A file is probed once per process for each (device, inode, size, modification time). The child
// never closes the file (an H5Fclose would release a lock this process may hold on it), writes
// nothing but the pipe and ends with _exit. Forking is safe for the MPI transports the project uses
// (shared memory, TCP; with InfiniBand, Open MPI and UCX mark registered memory MADV_DONTFORK, and
// the child touches none of it) and for CUDA (the child makes no CUDA call).
#include <filesystem>

namespace sf::h5 {

// FormatError as above (and those of the global heap and group checks, h5_heap_check.hpp and
// h5_group_check.hpp, made here on the raw bytes before the fork);
// IoError when the file cannot be read or the child cannot be started.
void probe_in_child(const std::filesystem::path& path);

}  // namespace sf::h5
