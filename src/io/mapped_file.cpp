#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace sf::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& file) {
  const std::string f = file.string();
  const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(f + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string e = std::strerror(errno);
    ::close(fd);
    throw IoError(f + ": cannot stat: " + e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(f + ": not a regular file");
  }
  std::shared_ptr<MappedFile> map(new MappedFile());
  map->fd_ = fd;  // closed by the destructor from here on
  map->size_ = static_cast<uint64_t>(st.st_size);
  if (map->size_ > 0) {
    void* a = ::mmap(nullptr, static_cast<size_t>(map->size_), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) throw IoError(f + ": cannot mmap: " + std::strerror(errno));
    map->addr_ = a;
  }
  return map;
}

MappedFile::~MappedFile() {
  if (addr_ && size_ > 0) ::munmap(addr_, static_cast<size_t>(size_));
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sf::io
