// The rows of a task's data files: the input is written as a CSV file and as a JSONL file, read
// by the parsers and through a task's data source (field lookup, begin/end, unescape).
#include "core/config.hpp"
#include "core/error.hpp"
#include "eval/task.hpp"
#include "fuzz/targets/targets.hpp"

namespace sf::fuzz {
namespace {

eval::Task task_reading(const std::string& file, const std::string& format, const std::string& field) {
  const std::string yaml = "name: fuzz\nversion: 1\ntest: {file: " + file + ", format: " + format +
                           ", field: " + field +
                           ", begin: 1, unescape: true}\nprompt: {user: \"{input}\"}\n"
                           "generation: {max_new_tokens: 8}\nmetric: {kind: refusal_keywords, keywords: "
                           "{version: v, list: [no]}}\n";
  return eval::Task::parse(ConfigNode::parse(yaml, "fuzz/task.yaml"));
}

}  // namespace

void task_rows(const uint8_t* data, size_t size) {
  const std::filesystem::path csv = scratch_file("rows.csv", data, size);
  const std::filesystem::path jsonl = scratch_file("rows.jsonl", data, size);
  static const eval::Task from_csv = task_reading("rows.csv", "csv", "goal");
  static const eval::Task from_jsonl = task_reading("rows.jsonl", "jsonl", "question");
  try {
    (void)eval::read_csv(csv);
    (void)from_csv.examples(eval::Split::kTest, csv.parent_path(), 5);
  } catch (const Error&) {  // a refused file; the JSONL reading is still tried
  }
  (void)eval::read_jsonl(jsonl);
  (void)from_jsonl.examples(eval::Split::kTest, jsonl.parent_path(), 5);
}

}  // namespace sf::fuzz
