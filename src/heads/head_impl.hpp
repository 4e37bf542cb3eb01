#pragma once
// Internal: the state behind sf::heads::Head (shared by head.cpp and head_io.cpp).
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "heads/head.hpp"

namespace sf::heads {

struct Head::Impl {
  HeadSpec spec;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;  // 0 for bb and bias heads
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::map<std::string, std::string> metadata;

  torch::Tensor param(const std::string& name) const;
  // The parameters a head of this spec has, by name and shape, in their fixed order.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> expected_shapes(const HeadSpec& spec, int64_t V,
                                                                                   int64_t H);
};

}  // namespace sf::heads
