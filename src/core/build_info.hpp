#pragma once
// Version facts recorded in every output file. Defined in a file generated at every build
// (cmake/build_info.cmake), so the git SHA is the one the binary was built from.
namespace sf::build {
extern const char* const kVersion;
extern const char* const kGitSha;  // 12 hex digits, "-dirty" when the tree had uncommitted changes
}  // namespace sf::build
