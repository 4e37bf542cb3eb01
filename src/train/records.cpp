#include "train/records.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace sf::train {
namespace {

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string() + ": cannot open data file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 4180: fields separated by commas, optionally quoted; a doubled quote inside quotes is one
// quote; quoted fields may hold commas and newlines. Returns rows of fields with their line numbers.
std::vector<std::pair<int64_t, std::vector<std::string>>> parse_csv(const std::string& text,
                                                                    const std::filesystem::path& file) {
  std::vector<std::pair<int64_t, std::vector<std::string>>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool field_started = false;
  int64_t line = 1;
  int64_t row_line = 1;
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) rows.emplace_back(row_line, std::move(row));
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      ++line;
      row_line = line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) throw FormatError(file.string() + ": line " + std::to_string(row_line) + ": unterminated quoted field");
  if (field_started || !row.empty()) end_row();
  return rows;
}

}  // namespace

RecordFormat parse_record_format(const std::string& name, const std::string& where) {
  if (name == "csv") return RecordFormat::kCsv;
  if (name == "jsonl") return RecordFormat::kJsonl;
  if (name == "lines") return RecordFormat::kLines;
  throw ConfigError(where + ": unknown format '" + name + "' (csv, jsonl, lines)");
}

std::vector<Record> read_records(const std::filesystem::path& file, RecordFormat format) {
  const std::string text = read_all(file);
  std::vector<Record> out;
  if (format == RecordFormat::kCsv) {
    auto rows = parse_csv(text, file);
    if (rows.empty()) throw FormatError(file.string() + ": CSV file has no header");
    const auto& header = rows[0].second;
    for (size_t r = 1; r < rows.size(); ++r) {
      const auto& [line, fields] = rows[r];
      if (fields.size() != header.size()) {
        throw FormatError(file.string() + ": line " + std::to_string(line) + ": " + std::to_string(fields.size()) +
                          " fields, the header has " + std::to_string(header.size()));
      }
      Record rec;
      for (size_t i = 0; i < header.size(); ++i) rec[header[i]] = fields[i];
      out.push_back(std::move(rec));
    }
    return out;
  }
  std::istringstream in(text);
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (format == RecordFormat::kLines) {
      out.push_back(Record{{"text", line}});
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(file.string() + ": line " + std::to_string(line_no) + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw FormatError(file.string() + ": line " + std::to_string(line_no) + ": not a JSON object");
    Record rec;
    for (const auto& [k, v] : j.items()) rec[k] = v.is_string() ? v.get<std::string>() : v.dump();
    out.push_back(std::move(rec));
  }
  return out;
}

std::vector<std::filesystem::path> match_files(const std::filesystem::path& root, const std::string& pattern) {
  const std::filesystem::path rel(pattern);
  const std::string name = rel.filename().string();
  const std::filesystem::path dir = root / rel.parent_path();
  if (name.find('*') == std::string::npos) {
    if (!std::filesystem::is_regular_file(root / rel)) throw IoError((root / rel).string() + ": data file not found");
    return {root / rel};
  }
  // Glob on the file name only: '*' matches any run of characters.
  auto matches = [&name](const std::string& s) {
    size_t p = 0, q = 0, star = std::string::npos, mark = 0;
    while (q < s.size()) {
      if (p < name.size() && name[p] == '*') {
        star = p++;
        mark = q;
      } else if (p < name.size() && name[p] == s[q]) {
        ++p;
        ++q;
      } else if (star != std::string::npos) {
        p = star + 1;
        q = ++mark;
      } else {
        return false;
      }
    }
    while (p < name.size() && name[p] == '*') ++p;
    return p == name.size();
  };
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && matches(entry.path().filename().string())) out.push_back(entry.path());
  }
  if (ec) throw IoError(dir.string() + ": cannot list data folder (" + ec.message() + ")");
  if (out.empty()) throw IoError((root / rel).string() + ": no data file matches");
  std::sort(out.begin(), out.end());
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

std::string unescape_text(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char n = s[i + 1];
      if (n == 'n' || n == 't' || n == '\\') {
        out.push_back(n == 'n' ? '\n' : n == 't' ? '\t' : '\\');
        ++i;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace sf::train
