#pragma once
// Shared helpers for the test suite: paths to fixtures and ../shared, temporary folders, and
// running the CLI.
#include <filesystem>
#include <string>
#include <vector>

namespace sf::test {

std::filesystem::path source_dir();    // the repository root
std::filesystem::path shared_dir();    // ../shared (real tokenizers, configs, datasets)
std::filesystem::path fixtures_dir();  // tests/fixtures
std::filesystem::path cli_path();      // the built `superficial` binary

// A fresh, empty folder under the build tree, removed when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output.
CommandResult run_command(const std::string& command_line);

// Reads a whole file; throws std::runtime_error if it cannot.
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace sf::test
