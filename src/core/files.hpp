#pragma once
// Reading whole input files, with the one-line errors the CLI prints.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sf {

// The file's bytes. IoError "<file>: cannot open[ <what>]" when it cannot be read.
std::string read_text_file(const std::filesystem::path& file, const std::string& what = "");

// The file parsed as JSON. IoError as above; FormatError "<file>: malformed JSON at byte N".
nlohmann::json read_json_file(const std::filesystem::path& file);

// JSON text from outside (a file, a header, an attribute of another run's file) parsed; every
// failure of the parser becomes one `Error` line naming `what`: a syntax error with its byte
// offset (plus `offset`, the text's position in its file), anything else the parser refuses (a
// number out of range, bytes that are not UTF-8) with the parser's message.
template <class Error>
nlohmann::json parse_json_text(std::string_view text, const std::string& what, uint64_t offset = 0) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(what + ": malformed JSON at byte " + std::to_string(offset + e.byte));
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": malformed JSON: " + e.what());
  }
}

}  // namespace sf
