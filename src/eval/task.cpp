#include "eval/task.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace sf::eval {
namespace {

constexpr const char* kInput = "{input}";

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string() + ": cannot open data file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

DataSource parse_source(const ConfigNode& n) {
  DataSource d;
  d.file = n.get<std::string>("file");
  d.format = n.get<std::string>("format");
  if (d.format != "csv" && d.format != "jsonl" && d.format != "lines")
    throw ConfigError(n.where("format") + ": expected csv, jsonl or lines");
  if (d.format == "lines") {
    d.field = n.get<std::string>("field", "text");
    if (d.field != "text") throw ConfigError(n.where("field") + ": a lines file has the single field 'text'");
  } else {
    d.field = n.get<std::string>("field");
  }
  d.begin = n.get<int64_t>("begin", 0);
  d.end = n.get_optional<int64_t>("end");
  if (d.begin < 0) throw ConfigError(n.where("begin") + ": must be >= 0");
  if (d.end && *d.end < d.begin) throw ConfigError(n.where("end") + ": must be >= begin");
  d.unescape = n.get<bool>("unescape", false);
  d.order = n.get<std::string>("order", "files");
  if (d.order != "files" && d.order != "interleave")
    throw ConfigError(n.where("order") + ": expected files or interleave");
  return d;
}

PerTemplate parse_per_template(const ConfigNode& parent, const std::string& key, const std::string& fallback) {
  PerTemplate p;
  p.fallback = fallback;
  if (!parent.has(key)) return p;
  if (parent.yaml()[key].IsScalar()) {
    p.fallback = parent.get<std::string>(key);
    return p;
  }
  const ConfigNode m = parent.child(key);
  p.fallback = m.get<std::string>("default");
  for (const auto& k : m.keys()) {
    if (k != "default") p.by_template[k] = m.get<std::string>(k);
  }
  return p;
}

MetricSpec parse_metric(const ConfigNode& n) {
  MetricSpec m;
  const auto kind = n.get<std::string>("kind");
  if (kind == "number_match") {
    m.kind = MetricKind::kNumberMatch;
    m.gold_field = n.get<std::string>("gold_field");
    m.gold_after = n.get<std::string>("gold_after", "");
  } else if (kind == "refusal_keywords") {
    m.kind = MetricKind::kRefusalKeywords;
    const ConfigNode k = n.child("keywords");
    m.keywords_version = k.get<std::string>("version");
    m.keywords = k.get<std::vector<std::string>>("list");
    if (m.keywords.empty()) throw ConfigError(k.where("list") + ": must not be empty");
    for (const auto& w : m.keywords) {
      if (w.empty()) throw ConfigError(k.where("list") + ": empty keyword");
    }
  } else if (kind == "multiple_choice") {
    m.kind = MetricKind::kMultipleChoice;
    m.best_field = n.get<std::string>("best_field");
    m.correct_field = n.get<std::string>("correct_field");
    m.incorrect_field = n.get<std::string>("incorrect_field");
    m.separator = n.get<std::string>("separator");
    if (m.separator.empty()) throw ConfigError(n.where("separator") + ": must not be empty");
  } else if (kind == "judge") {
    m.kind = MetricKind::kJudge;
  } else {
    throw ConfigError(n.where("kind") + ": expected number_match, refusal_keywords, multiple_choice or judge");
  }
  return m;
}

std::string unescape_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  // '*' matches any run of characters; everything else literally.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

std::string split_name(Split s) { return s == Split::kTrain ? "train" : "test"; }

const std::string& PerTemplate::for_template(const std::string& template_name) const {
  auto it = by_template.find(template_name);
  return it == by_template.end() ? fallback : it->second;
}

std::vector<std::string> MetricSpec::score_names() const {
  switch (kind) {
    case MetricKind::kNumberMatch:
      return {"accuracy"};
    case MetricKind::kRefusalKeywords:
      return {"harm_rate"};
    case MetricKind::kMultipleChoice:
      return {"mc1", "mc2"};
    case MetricKind::kJudge:
      return {};
  }
  return {};
}

Task Task::load(const std::string& name_or_path, const std::filesystem::path& tasks_dir) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".yaml");
  const std::filesystem::path file =
      is_path ? std::filesystem::path(name_or_path) : tasks_dir / (name_or_path + ".yaml");
  if (!std::filesystem::exists(file))
    throw IoError(file.string() + ": task file not found (task '" + name_or_path + "')");
  return parse(ConfigNode::load_file(file));
}

Task Task::parse(const ConfigNode& root) {
  Task t;
  t.source_ = root.source();
  YAML::Node answers_only = YAML::Clone(root.yaml());
  answers_only.remove("judges");  // judges score the answers; changing them changes no answer
  t.yaml_ = YAML::Dump(answers_only);
  t.name_ = root.get<std::string>("name");
  t.version_ = root.get<int64_t>("version");
  root.get<std::string>("description", "");
  for (Split s : {Split::kTrain, Split::kTest}) {
    if (root.has(split_name(s))) t.data_[s] = parse_source(root.child(split_name(s)));
  }
  if (!t.data_.count(Split::kTest)) throw ConfigError(root.where("test") + ": required section is missing");
  const ConfigNode prompt = root.child("prompt");
  t.user_ = parse_per_template(prompt, "user", "");
  t.answer_prefix_ = parse_per_template(prompt, "answer_prefix", "");
  auto check_input = [&](const std::string& text) {
    if (text.find(kInput) == std::string::npos)
      throw ConfigError(prompt.where("user") + ": every variant must contain {input}");
  };
  check_input(t.user_.fallback);
  for (const auto& kv : t.user_.by_template) check_input(kv.second);
  t.metric_ = parse_metric(root.child("metric"));
  if (root.has("judges")) t.judging_ = judge::parse_task_judges(root.sequence("judges"));
  if (t.metric_.kind == MetricKind::kJudge && t.judging_.judges.empty())
    throw ConfigError(root.where("judges") + ": metric kind 'judge' needs the judges that score the task");
  if (t.generates()) {
    const ConfigNode g = root.child("generation");
    t.generation_.max_new_tokens = g.get<int64_t>("max_new_tokens");
    if (t.generation_.max_new_tokens <= 0) throw ConfigError(g.where("max_new_tokens") + ": must be > 0");
    t.generation_.stop = g.get<std::vector<std::string>>("stop", {});
    t.generation_.extract_stop = g.get<std::vector<std::string>>("extract_stop", {});
    for (const auto& s : t.generation_.extract_stop) {
      if (s.empty()) throw ConfigError(g.where("extract_stop") + ": empty stop string");
    }
    for (const auto& s : t.generation_.stop) {
      if (s.empty()) throw ConfigError(g.where("stop") + ": empty stop string");
    }
  } else if (root.has("generation")) {
    throw ConfigError(root.where("generation") + ": a multiple_choice task does not generate");
  }
  root.finish();
  return t;
}

bool Task::has_split(Split s) const { return data_.count(s) > 0; }

const DataSource& Task::data(Split s) const {
  auto it = data_.find(s);
  if (it == data_.end()) throw ConfigError(source_ + ": " + split_name(s) + ": section is missing");
  return it->second;
}

std::vector<Example> Task::examples(Split s, const std::filesystem::path& data_root, int64_t max_examples) const {
  const DataSource& d = data(s);
  // Every matched file's rows [begin, end), in file order.
  std::vector<std::vector<Example>> per_file;
  for (const auto& file : match_files(data_root, d.file)) {
    std::vector<Example>& out = per_file.emplace_back();
    std::vector<std::map<std::string, std::string>> rows;
    if (d.format == "csv") {
      rows = read_csv(file);
    } else if (d.format == "jsonl") {
      rows = read_jsonl(file);
    } else {
      std::istringstream in(read_all(file));
      for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        rows.push_back({{"text", line}});
      }
    }
    const int64_t end = std::min<int64_t>(d.end.value_or(static_cast<int64_t>(rows.size())), rows.size());
    for (int64_t r = d.begin; r < end; ++r) {
      auto& row = rows[static_cast<size_t>(r)];
      auto it = row.find(d.field);
      if (it == row.end())
        throw FormatError(file.string() + ": row " + std::to_string(r + 1) + ": field '" + d.field + "' is missing");
      Example e;
      e.input = d.unescape ? unescape_newlines(it->second) : it->second;
      e.fields = std::move(row);
      e.fields["source"] = file.stem().string();
      out.push_back(std::move(e));
    }
  }
  // The split's order: file by file, or row m of every file before row m+1 of any (interleave).
  std::vector<Example> out;
  if (d.order == "interleave") {
    for (size_t m = 0;; ++m) {
      bool any = false;
      for (auto& rows : per_file) {
        if (m >= rows.size()) continue;
        out.push_back(std::move(rows[m]));
        any = true;
      }
      if (!any) break;
    }
  } else {
    for (auto& rows : per_file)
      for (auto& e : rows) out.push_back(std::move(e));
  }
  if (max_examples >= 0 && static_cast<int64_t>(out.size()) > max_examples)
    out.resize(static_cast<size_t>(max_examples));
  for (size_t i = 0; i < out.size(); ++i) out[i].id = static_cast<int64_t>(i);
  return out;
}

std::string Task::user_message(const std::string& input, const std::string& template_name) const {
  std::string text = user_.for_template(template_name);
  for (size_t pos = text.find(kInput); pos != std::string::npos; pos = text.find(kInput, pos + input.size())) {
    text.replace(pos, std::string(kInput).size(), input);
  }
  return text;
}

const std::string& Task::answer_prefix(const std::string& template_name) const {
  return answer_prefix_.for_template(template_name);
}

std::vector<std::map<std::string, std::string>> read_csv(const std::filesystem::path& file) {
  const std::string text = read_all(file);
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, field_started = false;
  int64_t line = 1;
  auto end_field = [&] {
    record.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"') {
      if (field_started)
        throw FormatError(file.string() + ": line " + std::to_string(line) + ": quote inside an unquoted field");
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_field();
      records.push_back(std::move(record));
      record.clear();
      ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) throw FormatError(file.string() + ": line " + std::to_string(line) + ": unterminated quoted field");
  if (field_started || !record.empty()) {
    end_field();
    records.push_back(std::move(record));
  }
  if (records.empty()) throw FormatError(file.string() + ": empty csv file (a header row is required)");
  const auto& header = records[0];
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() == 1 && records[r][0].empty()) continue;  // blank line
    if (records[r].size() != header.size())
      throw FormatError(file.string() + ": record " + std::to_string(r + 1) + ": " + std::to_string(records[r].size()) +
                        " fields, header has " + std::to_string(header.size()));
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < header.size(); ++c) row[header[c]] = records[r][c];
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::map<std::string, std::string>> read_jsonl(const std::filesystem::path& file) {
  std::istringstream in(read_all(file));
  std::vector<std::map<std::string, std::string>> rows;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw FormatError(file.string() + ": line " + std::to_string(line_no) + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw FormatError(file.string() + ": line " + std::to_string(line_no) + ": expected an object");
    std::map<std::string, std::string> row;
    for (auto it = j.begin(); it != j.end(); ++it) {
      row[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::filesystem::path> match_files(const std::filesystem::path& root, const std::string& pattern) {
  const std::filesystem::path rel(pattern);
  const std::string name = rel.filename().string();
  const std::filesystem::path dir = root / rel.parent_path();
  if (rel.parent_path().string().find('*') != std::string::npos)
    throw ConfigError(pattern + ": '*' is allowed in the file name only");
  std::vector<std::filesystem::path> out;
  if (name.find('*') == std::string::npos) {
    if (!std::filesystem::is_regular_file(dir / name)) throw IoError((dir / name).string() + ": data file not found");
    out.push_back(dir / name);
    return out;
  }
  if (!std::filesystem::is_directory(dir)) throw IoError(dir.string() + ": data folder not found");
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && glob_match(name, e.path().filename().string())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw IoError((dir / name).string() + ": no data file matches");
  return out;
}

}  // namespace sf::eval
