#include "train/records.hpp"

#include <fstream>

#include "core/error.hpp"
#include "eval/task.hpp"

namespace sf::train {

RecordFormat parse_record_format(const std::string& name, const std::string& where) {
  if (name == "csv") return RecordFormat::kCsv;
  if (name == "jsonl") return RecordFormat::kJsonl;
  if (name == "lines") return RecordFormat::kLines;
  throw ConfigError(where + ": unknown format '" + name + "' (csv, jsonl, lines)");
}

std::vector<Record> read_records(const std::filesystem::path& file, RecordFormat format) {
  if (format == RecordFormat::kCsv) return eval::read_csv(file);
  if (format == RecordFormat::kJsonl) return eval::read_jsonl(file);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string() + ": cannot open data file");
  std::vector<Record> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(Record{{"text", line}});
  }
  return out;
}

std::string render_format(const std::string& format, const Record& record, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '{' && i + 1 < format.size() && format[i + 1] == '{') {
      out.push_back('{');
      ++i;
    } else if (c == '}' && i + 1 < format.size() && format[i + 1] == '}') {
      out.push_back('}');
      ++i;
    } else if (c == '{') {
      const size_t close = format.find('}', i);
      if (close == std::string::npos) throw ConfigError(where + ": unbalanced '{' in '" + format + "'");
      const std::string field = format.substr(i + 1, close - i - 1);
      auto it = record.find(field);
      if (it == record.end()) throw ConfigError(where + ": the records have no field '" + field + "'");
      out += it->second;
      i = close;
    } else if (c == '}') {
      throw ConfigError(where + ": unbalanced '}' in '" + format + "'");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string unescape_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out.push_back('\n');
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace sf::train
