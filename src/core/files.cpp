#include "core/files.hpp"

#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace sf {

std::string read_text_file(const std::filesystem::path& file, const std::string& what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string() + ": cannot open" + (what.empty() ? "" : " " + what));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json_file(const std::filesystem::path& file) {
  return parse_json_text<FormatError>(read_text_file(file), file.string());
}

}  // namespace sf
