// Prompts within a model's context (eval::render_prompt with a ContextLimit): a prompt that fits
// is untouched; a longer one is refused (`truncate: error`, the default) or loses the start of its
// input (`truncate: left`) until it fits, template and answer prefix kept whole.
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/error.hpp"
#include "eval/prompt.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::eval::ContextLimit;
using sf::eval::Task;

Task task_with(const std::string& truncate) {
  return Task::parse(sf::ConfigNode::parse(
      "name: t\nversion: 1\ntest: {file: x.csv, format: csv, field: q}\nprompt: {user: 'Question: {input}', "
      "answer_prefix: \"\\nAnswer:\"}\ngeneration: {max_new_tokens: 8}\n"
      "metric: {kind: number_match, gold_field: a}\n" +
          truncate,
      "t.yaml"));
}

const sf::tok::Tokenizer& tokenizer() {
  static const auto t = sf::tok::Tokenizer::from_file(sf::test::fixtures_dir() / "judges" / "bpe" / "tokenizer.json");
  return t;
}

sf::eval::Example example(int words) {
  sf::eval::Example e;
  e.id = 4;
  for (int i = 0; i < words; ++i) {
    if (i > 0) e.input += ' ';
    e.input += "word" + std::to_string(i);
  }
  return e;
}

TEST(Prompt, FittingPromptsAreUntouched) {
  const auto chat = sf::tok::ChatTemplate::preset("plain");
  const Task t = task_with("truncate: left\n");
  const auto free = sf::eval::render_prompt(t, example(5), tokenizer(), chat, {"m", 0, 0});
  const auto limited = sf::eval::render_prompt(t, example(5), tokenizer(), chat, {"m", 4096, 512});
  EXPECT_EQ(free.ids, limited.ids);
  EXPECT_EQ(limited.dropped_tokens, 0);
}

TEST(Prompt, TooLongIsAnErrorByDefault) {
  const auto chat = sf::tok::ChatTemplate::preset("plain");
  for (const std::string policy : {"", "truncate: error\n"}) {
    try {
      sf::eval::render_prompt(task_with(policy), example(200), tokenizer(), chat, {"tiny-base", 64, 16});
      FAIL() << "a prompt past the context was accepted";
    } catch (const sf::ShapeError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("task t example 4: the prompt has "), std::string::npos) << m;
      EXPECT_NE(m.find("model tiny-base's max_position_embeddings 64 with 16 positions kept for the answer"),
                std::string::npos)
          << m;
      EXPECT_NE(m.find("truncate: error"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(task_with("truncate: right\n"), sf::ConfigError);
}

TEST(Prompt, TruncateLeftDropsTheStartOfTheInput) {
  const auto chat = sf::tok::ChatTemplate::preset("plain");
  const Task t = task_with("truncate: left\n");
  const sf::eval::Example ex = example(200);
  for (const int64_t limit : {40, 64, 100}) {
    const ContextLimit l{"m", limit, 16};
    const auto p = sf::eval::render_prompt(t, ex, tokenizer(), chat, l);
    EXPECT_LE(static_cast<int64_t>(p.ids.size()), limit - 16);
    EXPECT_GT(static_cast<int64_t>(p.ids.size()), limit - 16 - 4) << "cut more than needed";
    EXPECT_GT(p.dropped_tokens, 0);
    EXPECT_EQ(p.text.rfind("Question: ", 0), 0u) << p.text;
    EXPECT_NE(p.text.find("word199\nAnswer:"), std::string::npos) << p.text;
    EXPECT_EQ(p.text.find("word0 "), std::string::npos) << p.text;
    EXPECT_EQ(sf::eval::render_prompt(t, ex, tokenizer(), chat, l).ids, p.ids);  // deterministic
  }
  // Not even the template fits: an error, never a prompt past the context.
  EXPECT_THROW(sf::eval::render_prompt(t, ex, tokenizer(), chat, {"m", 8, 6}), sf::ShapeError);
  EXPECT_THROW(sf::eval::render_prompt(t, ex, tokenizer(), chat, {"m", 8, 8}), sf::ShapeError);
}

}  // namespace
