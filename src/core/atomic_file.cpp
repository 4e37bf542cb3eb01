#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/fault.hpp"

namespace sf {
namespace {

const char* errno_name(int e) {
  switch (e) {
    case ENOSPC:
      return "ENOSPC";
    case EIO:
      return "EIO";
    case EDQUOT:
      return "EDQUOT";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case EROFS:
      return "EROFS";
    case ENOENT:
      return "ENOENT";
    case EEXIST:
      return "EEXIST";
    case EXDEV:
      return "EXDEV";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case ENOTEMPTY:
      return "ENOTEMPTY";
    case EBUSY:
      return "EBUSY";
    case ESTALE:
      return "ESTALE";
    case EFBIG:
      return "EFBIG";
    case EMFILE:
      return "EMFILE";
    case EBADF:
      return "EBADF";
    case EINVAL:
      return "EINVAL";
    default:
      return nullptr;
  }
}

// The errno the seam injects for this operation, else the result of `call` (0 or errno).
template <class F>
int attempt(fault::Op op, const std::filesystem::path& path, F call) {
  if (const int injected = fault::inject(op, path.string())) return injected;
  return call();
}

}  // namespace

std::string errno_text(int error) {
  const char* name = errno_name(error);
  return std::string(std::strerror(error)) + " (" + (name ? name : "errno " + std::to_string(error)) + ")";
}

void write_all(int fd, const void* data, size_t size, const std::filesystem::path& file) {
  if (const int e = fault::inject(fault::Op::kWrite, file.string()))
    throw IoError(file.string() + ": write failed: " + errno_text(e));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw IoError(file.string() + ": write failed: " + errno_text(w < 0 ? errno : EIO));
    p += w;
    size -= static_cast<size_t>(w);
  }
}

void sync_fd(int fd, const std::filesystem::path& file) {
  const int e = attempt(fault::Op::kSync, file, [&] { return ::fsync(fd) == 0 ? 0 : errno; });
  if (e != 0) throw IoError(file.string() + ": fsync failed: " + errno_text(e));
}

void sync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string() + ": cannot open for fsync: " + errno_text(errno));
  const int e = attempt(fault::Op::kSync, path, [&] { return ::fsync(fd) == 0 ? 0 : errno; });
  ::close(fd);
  if (e != 0) throw IoError(path.string() + ": fsync failed: " + errno_text(e));
}

void rename_path(const std::filesystem::path& from, const std::filesystem::path& to) {
  const int e = attempt(fault::Op::kRename, from, [&] { return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno; });
  if (e != 0) throw IoError(to.string() + ": cannot rename " + from.string() + " into place: " + errno_text(e));
}

void commit_file(const std::filesystem::path& part, const std::filesystem::path& file) {
  sync_path(part);
  rename_path(part, file);
  const std::filesystem::path dir = file.parent_path();
  sync_path(dir.empty() ? std::filesystem::path(".") : dir);
}

void write_file_atomically(const std::filesystem::path& file, const std::string& bytes) {
  const std::filesystem::path part = file.string() + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(part.string() + ": cannot create: " + errno_text(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), part);
  } catch (...) {
    ::close(fd);
    ::unlink(part.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(part.c_str());
    throw IoError(part.string() + ": close failed: " + errno_text(e));
  }
  commit_file(part, file);
}

}  // namespace sf
