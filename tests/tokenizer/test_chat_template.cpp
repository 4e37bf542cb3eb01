#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/chat_template.hpp"

namespace {

using sf::tok::ChatTemplate;

// Each preset reproduces transformers' apply_chat_template for the templates it stands for
// (goldens from scripts/golden_tokenizer.py).
TEST(ChatTemplate, PresetsEqualGoldenApplyChatTemplateRenderings) {
  const auto entries =
      nlohmann::json::parse(sf::test::read_file(sf::test::fixtures_dir() / "tokenizer" / "chat_templates.json"));
  ASSERT_GE(entries.size(), 5u);
  for (const auto& e : entries) {
    const auto t = ChatTemplate::preset(e.at("preset").get<std::string>());
    for (const auto& r : e.at("renderings")) {
      SCOPED_TRACE(e.at("source").get<std::string>() + " / " + r.at("sample").get<std::string>());
      std::vector<sf::tok::Message> conv;
      for (const auto& m : r.at("messages")) conv.push_back({m.at("role"), m.at("content")});
      const auto out = t.render(conv, true);
      EXPECT_EQ(out.text, r.at("text").get<std::string>());
      EXPECT_FALSE(out.add_special_tokens);
    }
  }
}

TEST(ChatTemplate, OneRenderingPerPreset) {
  const std::string u = "What is 2+2?", s = "Be brief.";
  auto text = [&](const char* name, const std::string& system) {
    return ChatTemplate::preset(name).prompt(u, system).text;
  };
  EXPECT_EQ(text("plain", ""), "What is 2+2?");
  EXPECT_EQ(text("plain", s), "Be brief.\n\nWhat is 2+2?");
  EXPECT_TRUE(ChatTemplate::preset("plain").prompt(u).add_special_tokens);
  EXPECT_EQ(text("alpaca", ""),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n");
  EXPECT_EQ(text("alpaca", s), "Be brief.\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n");
  EXPECT_TRUE(ChatTemplate::preset("alpaca").prompt(u).add_special_tokens);
  EXPECT_EQ(text("llama2-chat", s), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST]");
  EXPECT_EQ(text("llama2-chat", ""), "<s>[INST] What is 2+2? [/INST]");
  EXPECT_EQ(
      text("chatml", s),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(
      text("llama3", s),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|"
      "end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(text("mistral-inst", ""), "<s>[INST] What is 2+2? [/INST]");
  EXPECT_EQ(text("mistral-inst", s), "<s>[INST] Be brief.\n\nWhat is 2+2? [/INST]");
  EXPECT_EQ(text("zephyr", s), "<|system|>\nBe brief.</s>\n<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n");
  for (const auto& name : ChatTemplate::preset_names()) {
    if (name != "plain" && name != "alpaca") {
      EXPECT_FALSE(ChatTemplate::preset(name).prompt(u).add_special_tokens);
    }
  }
}

TEST(ChatTemplate, WithoutGenerationPrompt) {
  const auto t = ChatTemplate::preset("chatml");
  EXPECT_EQ(t.render({{"user", "Hi"}, {"assistant", "Hello"}}, false).text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n");
}

TEST(ChatTemplate, FromConfig) {
  auto c = sf::ConfigNode::parse("template: {preset: llama3}\n", "job.yaml");
  EXPECT_EQ(ChatTemplate::from_config(c.child("template")).name(), "llama3");

  c = sf::ConfigNode::parse(
      "template:\n  name: mine\n  prefix: '>> '\n  user: \"Q: {content}\\n\"\n  assistant: \"A: {content}\\n\"\n"
      "  generation_prompt: 'A:'\n  add_special_tokens: true\n",
      "job.yaml");
  const auto t = ChatTemplate::from_config(c.child("template"));
  EXPECT_EQ(t.name(), "mine");
  const auto r = t.prompt("hi");
  EXPECT_EQ(r.text, ">> Q: hi\nA:");
  EXPECT_TRUE(r.add_special_tokens);
  EXPECT_THROW(t.prompt("hi", "sys"), sf::ConfigError);  // no system slot

  EXPECT_THROW(ChatTemplate::from_config(sf::ConfigNode::parse("{preset: gpt5}", "j.yaml")), sf::ConfigError);
  EXPECT_THROW(ChatTemplate::from_config(sf::ConfigNode::parse("{preset: chatml, user: x}", "j.yaml")),
               sf::ConfigError);
  EXPECT_THROW(ChatTemplate::from_config(sf::ConfigNode::parse(
                   "{user: 'no placeholder', assistant: '{content}', generation_prompt: '', add_special_tokens: false}",
                   "j.yaml")),
               sf::ConfigError);
  EXPECT_THROW(ChatTemplate::from_config(sf::ConfigNode::parse(
                   "{user: '{content}', assistant: '{content}', generation_prompt: '', add_special_tokens: false, "
                   "colour: red}",
                   "j.yaml")),
               sf::ConfigError);
}

TEST(ChatTemplate, UnknownRoleIsAnError) {
  EXPECT_THROW(ChatTemplate::preset("chatml").render({{"tool", "x"}}), sf::ConfigError);
}

}  // namespace
