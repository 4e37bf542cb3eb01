#include "core/text.hpp"

#include <stdexcept>

namespace sf {

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  if (sep.empty()) throw std::invalid_argument("split: empty separator");
  std::vector<std::string> out;
  size_t prev = 0;
  for (size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, prev)) {
    out.push_back(s.substr(prev, at - prev));
    prev = at + sep.size();
  }
  out.push_back(s.substr(prev));
  return out;
}

std::string trim(const std::string& s, const std::string& chars) {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

std::vector<std::string> split_trimmed(const std::string& s, const std::string& sep, const std::string& chars) {
  std::vector<std::string> out;
  for (const std::string& piece : split(s, sep)) {
    std::string t = trim(piece, chars);
    if (!t.empty()) out.push_back(std::move(t));
  }
  return out;
}

}  // namespace sf
