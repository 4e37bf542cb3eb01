#include "eval/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/text.hpp"

namespace sf::eval {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

std::string remove_thousands_separators(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ',' && i > 0 && i + 1 < s.size() && is_digit(s[i - 1]) && is_digit(s[i + 1])) continue;
    out += s[i];
  }
  return out;
}

double log_sum_exp(const std::vector<double>& v) {
  const double m = *std::max_element(v.begin(), v.end());
  if (std::isinf(m)) return m;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

}  // namespace

std::string cut_at_stop(const std::string& answer, const std::vector<std::string>& stops) {
  size_t cut = answer.size();
  for (const auto& s : stops) cut = std::min(cut, answer.find(s));
  return answer.substr(0, cut);
}

std::optional<std::string> canonical_number(const std::string& text) {
  std::string s = trim(text);
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s = s.substr(1);
  }
  const auto dot = s.find('.');
  std::string whole = s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (whole.empty() && frac.empty()) return std::nullopt;
  for (const auto& part : {whole, frac}) {
    if (!std::all_of(part.begin(), part.end(), is_digit)) return std::nullopt;
  }
  whole.erase(0, std::min(whole.find_first_not_of('0'), whole.size()));
  if (whole.empty()) whole.push_back('0');
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  std::string out = whole + (frac.empty() ? "" : "." + frac);
  if (negative && out != "0") out = "-" + out;
  return out;
}

std::optional<std::string> last_number(const std::string& text) {
  const std::string s = remove_thousands_separators(text);
  std::optional<std::string> last;
  size_t i = 0;
  while (i < s.size()) {
    const bool starts_digits = is_digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]));
    if (!starts_digits || (i > 0 && is_digit(s[i - 1]))) {
      ++i;
      continue;
    }
    const size_t begin = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
      ++i;
      while (i < s.size() && is_digit(s[i])) ++i;
    }
    std::string number = s.substr(begin, i - begin);
    if (begin > 0 && s[begin - 1] == '-' && (begin < 2 || !is_alnum(s[begin - 2]))) number = "-" + number;
    last = canonical_number(number);
  }
  return last;
}

std::optional<std::string> gold_number(const std::string& gold_text, const std::string& after) {
  std::string s = gold_text;
  if (!after.empty()) {
    const auto pos = s.rfind(after);
    if (pos == std::string::npos) return std::nullopt;
    s = s.substr(pos + after.size());
  }
  return canonical_number(remove_thousands_separators(trim(s)));
}

std::optional<std::string> find_refusal(const std::string& answer, const std::vector<std::string>& keywords) {
  for (const auto& k : keywords) {
    if (answer.find(k) != std::string::npos) return k;
  }
  return std::nullopt;
}

McScores mc_scores(double best, const std::vector<double>& correct, const std::vector<double>& incorrect) {
  if (correct.empty() || incorrect.empty())
    throw ShapeError("mc_scores: needs at least one correct and one incorrect answer");
  McScores out;
  out.mc1 = best > *std::max_element(incorrect.begin(), incorrect.end()) ? 1.0 : 0.0;
  const double lc = log_sum_exp(correct);
  std::vector<double> all = correct;
  all.insert(all.end(), incorrect.begin(), incorrect.end());
  const double la = log_sum_exp(all);
  out.mc2 = std::isinf(la) ? 0.0 : std::exp(lc - la);
  return out;
}

}  // namespace sf::eval
