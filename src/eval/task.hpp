#pragma once
// Evaluation tasks as data: configs/tasks/<name>.yaml (schema: configs/tasks/README.md).
//
// A task file names its prompt sources (`train:` for extraction/training prompts, `test:` for
// evaluation), how a prompt is shown to a model (user message and answer prefix, optionally per
// chat-template name), the generation settings, and the metric. Files are parsed strictly: an
// unknown key is a ConfigError naming the file and key.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "judge/spec.hpp"

namespace sf::eval {

enum class Split { kTrain, kTest };
std::string split_name(Split s);

// Where a split's prompts come from.
struct DataSource {
  std::string file;            // relative to the job's data_root; a '*' in the file name matches several files
  std::string format;          // csv (with a header row) | jsonl | lines (one prompt per line)
  std::string field;           // the prompt's column (csv) or key (jsonl); "text" for lines
  int64_t begin = 0;           // first row used of each file
  std::optional<int64_t> end;  // one past the last row used of each file (default: all)
  bool unescape = false;       // replace the two characters '\' 'n' by a newline (ToxiGen's files)
  // files: every file's rows in turn; interleave: row m of every file (sorted by name) before row
  // m+1 of any, so that a first-N sample covers every file (ToxiGen's groups), as the reference does.
  std::string order = "files";
};

// One prompt record. `fields` holds every column/key of the record as text (jsonl non-strings as
// JSON) plus "source" = the file's stem (e.g. hate_asian_1k).
struct Example {
  int64_t id = 0;     // position in the split (after begin/end, in the source's order)
  std::string input;  // the prompt field's value
  std::map<std::string, std::string> fields;
};

// A text that may differ per chat template: `default` plus overrides keyed by template name
// (ChatTemplate::name(): plain, alpaca, llama2-chat, chatml, ..., custom).
struct PerTemplate {
  std::string fallback;
  std::map<std::string, std::string> by_template;
  const std::string& for_template(const std::string& template_name) const;
};

struct GenerationSpec {
  int64_t max_new_tokens = 512;
  std::vector<std::string> stop;  // the answer is cut at the first of these (and generation ends)
  // Extraction only: the aligned model's training answers also end at these (the reference ends
  // ToxiGen's extraction answers at the first newline but not its evaluation answers).
  std::vector<std::string> extract_stop;
};

enum class MetricKind {
  kNumberMatch,      // last number in the answer == gold number (GSM8K)
  kRefusalKeywords,  // harm rate: 1 when the answer contains none of the refusal keywords (AdvBench)
  kMultipleChoice,   // MC1/MC2 from answer log-likelihoods, no generation (TruthfulQA)
  kJudge,            // no judge-free score: only the task's judges score it (ToxiGen; src/judge)
};

struct MetricSpec {
  MetricKind kind = MetricKind::kNumberMatch;
  // number_match: the gold answer is the text after `gold_after` in field `gold_field`.
  std::string gold_field;
  std::string gold_after;
  // refusal_keywords: case-sensitive substrings; their list's version is recorded in every result.
  std::vector<std::string> keywords;
  std::string keywords_version;
  // multiple_choice: fields with the best answer and the `separator`-joined true/false answers.
  std::string best_field, correct_field, incorrect_field, separator;
  // Names of the per-example scores this metric produces (accuracy | harm_rate | mc1, mc2 | none).
  std::vector<std::string> score_names() const;
  bool scored() const { return kind != MetricKind::kJudge; }
};

class Task {
 public:
  // `name_or_path`: a file path (contains '/' or ends in .yaml) or a name looked up as
  // <tasks_dir>/<name>.yaml.
  static Task load(const std::string& name_or_path, const std::filesystem::path& tasks_dir = "configs/tasks");
  static Task parse(const ConfigNode& root);

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const std::string& source() const { return source_; }  // the task file
  bool has_split(Split s) const;
  const DataSource& data(Split s) const;  // ConfigError when the split is not defined
  const GenerationSpec& generation() const { return generation_; }
  bool generates() const { return metric_.kind != MetricKind::kMultipleChoice; }
  const MetricSpec& metric() const { return metric_; }
  // The judges that score the task's answers (`judges:`, parsed by src/judge).
  const judge::TaskJudging& judging() const { return judging_; }

  // Reads the split's prompts (at most `max_examples` when >= 0). IoError/FormatError name the
  // file and line.
  std::vector<Example> examples(Split s, const std::filesystem::path& data_root, int64_t max_examples = -1) const;

  // The user message for an example's input under a chat template, and the text appended after
  // the rendered template (the model's answer continues from there).
  std::string user_message(const std::string& input, const std::string& template_name) const;
  const std::string& answer_prefix(const std::string& template_name) const;
  // The task file without its judges, as YAML text: what determines the answers (stored in result
  // files for provenance; part of the evaluation's fingerprint).
  const std::string& definition_yaml() const { return yaml_; }

 private:
  std::string name_;
  int64_t version_ = 1;
  std::string source_;
  std::string yaml_;
  std::map<Split, DataSource> data_;
  PerTemplate user_;
  PerTemplate answer_prefix_;
  GenerationSpec generation_;
  MetricSpec metric_;
  judge::TaskJudging judging_;
};

// Parsers used by Task::examples (exposed for tests). Each returns rows as column → value.
std::vector<std::map<std::string, std::string>> read_csv(const std::filesystem::path& file);
std::vector<std::map<std::string, std::string>> read_jsonl(const std::filesystem::path& file);
// Files matching `pattern` (relative to root; '*' allowed in the last component only), sorted.
std::vector<std::filesystem::path> match_files(const std::filesystem::path& root, const std::string& pattern);

}  // namespace sf::eval
