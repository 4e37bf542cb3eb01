#pragma once
// Output files that appear under their final name only when whole. A writer fills `<file>.part`
// (or another temporary name), then commit_file() syncs it to disk, renames it into place and
// syncs the folder, so a crash, a full disk or a failing disk at any point leaves either the old
// state or the whole new file, never part of one under the final name. Every failure is one
// IoError line naming the file and the errno, e.g.
//   runs/x/evaluate/chunks/unit-000003.h5.part: fsync failed: No space left on device (ENOSPC)
// All operations pass through the fault-injection seam (core/fault.hpp).
#include <cstddef>
#include <filesystem>
#include <string>

namespace sf {

// "No space left on device (ENOSPC)": strerror and the symbolic name of an errno value.
std::string errno_text(int error);

// write(2) of all `size` bytes to `fd`, retrying short writes and EINTR; IoError naming `file`.
void write_all(int fd, const void* data, size_t size, const std::filesystem::path& file);
// fsync(2) of an open descriptor of `file`.
void sync_fd(int fd, const std::filesystem::path& file);
// fsync(2) of a file or folder by path (a folder: so that a rename inside it is durable).
void sync_path(const std::filesystem::path& path);
// rename(2); IoError naming both paths. Works for folders (trainer checkpoints).
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);

// Syncs `part`, renames it to `file` and syncs the folder.
void commit_file(const std::filesystem::path& part, const std::filesystem::path& file);
// Writes `bytes` to `<file>.part` and commits it.
void write_file_atomically(const std::filesystem::path& file, const std::string& bytes);

}  // namespace sf
