#pragma once
// What one trained head file holds: a joint head, used for every task, or one head per task
// (`heads.per_task: true`, as the reference's committed results were trained), all of the same
// spec. Saved as one safetensors file with metadata:
//   format       superficial-head-v2 (v1 files, whose bb heads were served differently, are refused)
//   name, type, rank, k, init, vocab_size, hidden_size
//   tasks        per-task files only: JSON list of task names; tensors are named <task>/<param>
// plus what the trainer adds (the source pair, fingerprints, training config, validation examples).
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "heads/head.hpp"

namespace sf::heads {

inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kFormat = "superficial-head-v2";

class HeadSet {
 public:
  static HeadSet joint(Head head);
  // Every head must share one spec and vocabulary (ShapeError otherwise); at least one task.
  static HeadSet per_task(std::map<std::string, Head> heads);
  // FormatError naming the file and the tensor or metadata key when the file is not a head file.
  static HeadSet load(const std::filesystem::path& file, torch::Device device = torch::kCPU);
  // Metadata read from a head file without its tensors.
  static std::map<std::string, std::string> read_metadata(const std::filesystem::path& file);

  // Writes parameters (float32) and metadata (the keys above override `extra`), to a temporary
  // name then renamed, so an existing file is always complete.
  void save(const std::filesystem::path& file, const std::map<std::string, std::string>& extra = {}) const;

  bool is_per_task() const { return per_task_; }
  // The head for a task: the joint head, or that task's head (ConfigError naming the task when a
  // per-task file has none for it).
  const Head& for_task(const std::string& task) const;
  std::vector<std::string> tasks() const;  // per-task files: the tasks; joint: empty
  const HeadSpec& spec() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  bool per_task_ = false;
  std::map<std::string, Head> heads_;  // joint: one entry under ""
  std::map<std::string, std::string> metadata_;
  std::string source_;
};

}  // namespace sf::heads
