#pragma once
// Fuzz targets: one function per parser of outside input. Each takes arbitrary bytes and must
// either succeed or throw one of the project's typed errors (sf::Error); anything else (another
// exception, a crash, a sanitizer report, a leak, a hang) is a finding. The same functions run
// under libFuzzer (tests/fuzz/libfuzzer, SUPERFICIAL_FUZZ=ON) and, on the committed seed corpora
// and regression inputs, in the normal test suite (tests/fuzz/test_replay.cpp).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sf::fuzz {

using Target = void (*)(const uint8_t* data, size_t size);

struct NamedTarget {
  const char* name;  // also the folder name under tests/fuzz/corpus and tests/fuzz/regressions
  Target run;
};

// Every target, in a fixed order.
const std::vector<NamedTarget>& targets();

void safetensors(const uint8_t* data, size_t size);     // header + tensor table + tensor views
void model_config(const uint8_t* data, size_t size);    // config.json
void tokenizer_json(const uint8_t* data, size_t size);  // tokenizer.json load + encode + decode
void tokenizer_text(const uint8_t* data, size_t size);  // encode/decode of any text and ids
void job(const uint8_t* data, size_t size);             // job YAML + --set overrides, every section
void task(const uint8_t* data, size_t size);            // task YAML
void task_rows(const uint8_t* data, size_t size);       // CSV / JSONL rows of a task's data files
void h5(const uint8_t* data, size_t size);              // HDF5 logits / results / judgments readers
void gguf(const uint8_t* data, size_t size);            // GGUF header, metadata, tensors, config, tokenizer

// Runs `body`: returns nullopt when it finished or threw an sf::Error, else a description of the
// finding (another exception type and its message).
std::optional<std::string> guarded(const std::function<void()>& body);

// The repository root (for fixtures and results-schema/).
std::filesystem::path source_dir();

// Writes bytes to a file of this name in a private scratch folder (tmpfs when there is one) and
// returns its path; the folder is reused by every call of this process.
std::filesystem::path scratch_file(const std::string& name, const uint8_t* data, size_t size);

// The input as text.
inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace sf::fuzz
