#pragma once
// Test seam for I/O failures: makes one write, fsync or rename of an output file fail as a full or
// failing disk would, so that tests can check what every stage leaves behind. Without the
// environment variable SUPERFICIAL_FAULT (every normal run) nothing is counted and nothing fails.
//
//   SUPERFICIAL_FAULT=<op>:<n>:<errno>[:<text>]
//     op     write | fsync | rename | probe
//     n      the n-th operation of that kind in this process (1-based) fails; later ones succeed
//            (counting starts again whenever the variable's value changes)
//     errno  ENOSPC | EIO, or KILL: the process sends itself SIGKILL instead of doing the n-th
//            operation (a crash at a chosen point, for resume tests that must not race the work);
//            the only choice for probe
//     text   optional: only operations on paths containing this text are counted
//
// Counted operations: every data write of an HDF5 output (dataset appends, flushes and closes of
// shard, unit, results and judgments files), of a safetensors file (heads, checkpoints) and of a
// text file written through write_file_atomically (summaries, trainer state); the fsync of each
// finished file and of its folder; the rename of each finished file (or checkpoint folder) into
// place. probe: each check of an HDF5 file before it is read (io/h5_probe.hpp); the n-th one's child
// process is killed as libhdf5 crashing on a damaged file would kill it, and the calling process goes
// on. A malformed value is a ConfigError at the first counted operation.
#include <string>

namespace sf::fault {

enum class Op { kWrite, kSync, kRename, kProbe };

// 0, or the errno this operation on `path` must fail with (with KILL, the n-th one does not return).
int inject(Op op, const std::string& path);

// Whether this operation on `path` is the one planned to fail, counted as inject counts; the caller
// makes it fail (for operations whose failure happens elsewhere, as the probe's in its child).
bool planned(Op op, const std::string& path);

}  // namespace sf::fault
