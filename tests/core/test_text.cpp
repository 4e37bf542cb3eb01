// Splitting and trimming (core/text.hpp), as the task files' answer lists, training fields, judges
// and tokenizer case files use them.
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/text.hpp"

namespace {

using Pieces = std::vector<std::string>;

TEST(Text, SplitKeepsEmptyPiecesAndCountsSeparators) {
  EXPECT_EQ(sf::split("a,b,c", ","), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(sf::split("", ","), (Pieces{""}));
  EXPECT_EQ(sf::split(",a,,", ","), (Pieces{"", "a", "", ""}));
  EXPECT_EQ(sf::split("no separator", ","), (Pieces{"no separator"}));
  // A separator of several characters, overlapping candidates read left to right.
  EXPECT_EQ(sf::split("x\n__case__\ny\n\n__case__\n", "\n__case__\n"), (Pieces{"x", "y\n", ""}));
  EXPECT_EQ(sf::split("aaa", "aa"), (Pieces{"", "a"}));
  EXPECT_THROW(sf::split("abc", ""), std::invalid_argument);
}

TEST(Text, TrimRemovesOnlyTheGivenCharactersAtTheEnds) {
  EXPECT_EQ(sf::trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(sf::trim(" \n\t "), "");
  EXPECT_EQ(sf::trim(""), "");
  EXPECT_EQ(sf::trim("--a-b--", "-"), "a-b");
  EXPECT_EQ(sf::trim("  a  ", ""), "  a  ");
}

TEST(Text, SplitTrimmedDropsEmptyPieces) {
  // TruthfulQA's answer lists.
  EXPECT_EQ(sf::split_trimmed("a; b ;  c; ", "; "), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(sf::split_trimmed("Harvard; Yale", "; "), (Pieces{"Harvard", "Yale"}));
  EXPECT_TRUE(sf::split_trimmed("", "; ").empty());
  EXPECT_TRUE(sf::split_trimmed(" ;  ; ", ";").empty());
  // A training field's own strip characters.
  EXPECT_EQ(sf::split_trimmed("*x*|**|y", "|", "*"), (Pieces{"x", "y"}));
}

}  // namespace
