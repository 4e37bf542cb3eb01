#pragma once
// Reading whole input files, with the one-line errors the CLI prints.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace sf {

// The file's bytes. IoError "<file>: cannot open[ <what>]" when it cannot be read.
std::string read_text_file(const std::filesystem::path& file, const std::string& what = "");

// The file parsed as JSON. IoError as above; FormatError "<file>: malformed JSON at byte N".
nlohmann::json read_json_file(const std::filesystem::path& file);

}  // namespace sf
