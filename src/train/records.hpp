#pragma once
// Training text sources: records read from dataset files (with the evaluation task readers: CSV
// with a header, JSON Lines, or plain lines) and rendered through format strings such as
// "{goal}\n{target}".
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sf::train {

// One record: field name → text. CSV: the header's column names. JSONL: the object's keys
// (strings as-is, other values as JSON). lines: the single field "text".
using Record = std::map<std::string, std::string>;

enum class RecordFormat { kCsv, kJsonl, kLines };

// "csv" | "jsonl" | "lines"; `where` names the config key in the ConfigError.
RecordFormat parse_record_format(const std::string& name, const std::string& where);

// Reads every record of `file` (blank lines skipped). IoError when the file cannot be read;
// FormatError naming the file and line for malformed content.
std::vector<Record> read_records(const std::filesystem::path& file, RecordFormat format);

// Replaces "{field}" by the record's value; "{{" and "}}" are literal braces. Throws ConfigError
// naming `where` and the field when the record lacks it or a brace is unbalanced.
std::string render_format(const std::string& format, const Record& record, const std::string& where);

// Turns the two characters '\' 'n' of text stored with escaped newlines (ToxiGen's files) into a
// newline, as the evaluation tasks' `unescape` does.
std::string unescape_newlines(const std::string& s);

}  // namespace sf::train
