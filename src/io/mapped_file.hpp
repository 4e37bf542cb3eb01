#pragma once
// A whole file memory-mapped read-only into this process (private, copy-on-write: views handed out
// as tensors may be written to without ever reaching the file). Shared by the safetensors and GGUF
// readers; a tensor viewing the bytes keeps the mapping alive through a shared_ptr. The file stays
// open so that parts of it can be read with pread without touching the mapping (tensor-parallel
// slices, SafetensorsFile::read_slice).
#include <cstdint>
#include <filesystem>
#include <memory>

namespace sf::io {

class MappedFile {
 public:
  // IoError naming the file when it cannot be opened, is not a regular file or cannot be mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& file);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  MappedFile() = default;
  void* addr_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
};

}  // namespace sf::io
