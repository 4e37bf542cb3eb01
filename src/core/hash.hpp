#pragma once
// Content hashes (SHA-256, hex) for provenance: model configs, tokenizers, heads.
#include <filesystem>
#include <string>
#include <string_view>

namespace sf {

std::string sha256_hex(std::string_view bytes);
// Hash of a file's bytes; throws IoError naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace sf
