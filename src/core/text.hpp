#pragma once
// Splitting and trimming text: one implementation for the task files' answer lists, the training
// sets' fields, the judges' answers and the tokenizer case files.
#include <string>
#include <vector>

namespace sf {

// The pieces of s between occurrences of sep, empty ones kept: n occurrences give n + 1 pieces.
// An empty sep is a std::invalid_argument (callers check user-given separators first).
std::vector<std::string> split(const std::string& s, const std::string& sep);

// s without the characters of `chars` at either end ("" when it holds nothing else).
std::string trim(const std::string& s, const std::string& chars = " \t\r\n");

// The pieces of s between occurrences of sep, each trimmed of `chars`, empty pieces dropped.
std::vector<std::string> split_trimmed(const std::string& s, const std::string& sep,
                                       const std::string& chars = " \t\r\n");

}  // namespace sf
