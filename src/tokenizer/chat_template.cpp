#include "tokenizer/chat_template.hpp"

#include <map>

#include "core/error.hpp"
#include "core/files.hpp"
#include "tokenizer/pretokenizer.hpp"

namespace sf::tok {

// A template is a set of format strings; "{content}" is a message's text and "{system}" the system
// prompt. Messages render one after another: prefix, then each message with its role's slot.
struct ChatTemplate::Slots {
  std::string prefix;             // once, before the first message
  std::string system;             // a system message ("" = no system slot)
  std::string default_system;     // used when the conversation has no system message
  std::string system_in_user;     // when set: the system prompt is folded into the first user message
  std::string user;               // a user message
  std::string assistant;          // an assistant message
  std::string generation_prompt;  // opens the assistant turn
  bool trim = false;              // strip whitespace around message contents (Jinja `trim`/`strip()`)
  bool add_special_tokens = false;
};

namespace {

// Replaces {content} and {system} in one pass (placeholders inside the values stay as they are).
std::string substitute(const std::string& fmt, const std::string& content, const std::string& system) {
  std::string out;
  for (size_t i = 0; i < fmt.size();) {
    if (fmt.compare(i, 9, "{content}") == 0) {
      out += content;
      i += 9;
    } else if (fmt.compare(i, 8, "{system}") == 0) {
      out += system;
      i += 8;
    } else {
      out += fmt[i++];
    }
  }
  return out;
}

// Python str.strip(): whitespace as str.isspace (White_Space plus the separators U+001C..U+001F).
std::string trim(const std::string& s) {
  const auto chars = detail::decode_utf8(s);
  auto space = [](char32_t cp) { return detail::is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); };
  size_t b = 0, e = chars.size();
  while (b < e && space(chars[b].cp)) ++b;
  while (e > b && space(chars[e - 1].cp)) --e;
  return b == e ? "" : s.substr(chars[b].begin, chars[e - 1].end - chars[b].begin);
}

const std::map<std::string, ChatTemplate::Slots>& presets() {
  using S = ChatTemplate::Slots;
  static const std::map<std::string, S> m = [] {
    std::map<std::string, S> p;
    S plain;
    plain.system = "{content}\n\n";
    plain.user = "{content}";
    plain.assistant = "\n\n{content}\n\n";
    plain.add_special_tokens = true;
    p["plain"] = plain;

    S alpaca;
    alpaca.system = "{content}\n\n";
    alpaca.default_system =
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
    alpaca.user = "### Instruction:\n{content}\n\n";
    alpaca.assistant = "### Response:\n{content}\n\n";
    alpaca.generation_prompt = "### Response:\n";
    alpaca.add_special_tokens = true;
    p["alpaca"] = alpaca;

    S llama2;
    llama2.system_in_user = "<<SYS>>\n{system}\n<</SYS>>\n\n{content}";
    llama2.user = "<s>[INST] {content} [/INST]";
    llama2.assistant = " {content} </s>";
    llama2.trim = true;
    p["llama2-chat"] = llama2;

    S chatml;
    chatml.system = "<|im_start|>system\n{content}<|im_end|>\n";
    chatml.user = "<|im_start|>user\n{content}<|im_end|>\n";
    chatml.assistant = "<|im_start|>assistant\n{content}<|im_end|>\n";
    chatml.generation_prompt = "<|im_start|>assistant\n";
    p["chatml"] = chatml;

    S llama3;
    llama3.prefix = "<|begin_of_text|>";
    llama3.system = "<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>";
    llama3.user = "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>";
    llama3.assistant = "<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>";
    llama3.generation_prompt = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    llama3.trim = true;
    p["llama3"] = llama3;

    S mistral;
    mistral.prefix = "<s>";
    mistral.system_in_user = "{system}\n\n{content}";
    mistral.user = "[INST] {content} [/INST]";
    mistral.assistant = "{content}</s>";
    p["mistral-inst"] = mistral;

    S zephyr;
    zephyr.system = "<|system|>\n{content}</s>\n";
    zephyr.user = "<|user|>\n{content}</s>\n";
    zephyr.assistant = "<|assistant|>\n{content}</s>\n";
    zephyr.generation_prompt = "<|assistant|>\n";
    p["zephyr"] = zephyr;
    return p;
  }();
  return m;
}

}  // namespace

ChatTemplate ChatTemplate::preset(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown prompt template preset '" + name + "' (known: " + known + ")");
  }
  ChatTemplate t;
  t.name_ = name;
  t.slots_ = std::make_shared<const Slots>(it->second);
  return t;
}

std::vector<std::string> ChatTemplate::preset_names() {
  return {"plain", "alpaca", "llama2-chat", "chatml", "llama3", "mistral-inst", "zephyr"};
}

ChatTemplate ChatTemplate::from_config(const ConfigNode& node) {
  if (node.has("preset")) {
    ChatTemplate t = preset(node.get<std::string>("preset"));
    node.finish();
    return t;
  }
  Slots s;
  s.prefix = node.get<std::string>("prefix", "");
  if (const auto file = node.get_optional<std::string>("prefix_file")) {
    if (!s.prefix.empty()) throw ConfigError(node.where("prefix_file") + ": give prefix or prefix_file, not both");
    s.prefix = read_text_file(*file, node.where("prefix_file"));
  }
  s.system = node.get<std::string>("system", "");
  s.default_system = node.get<std::string>("default_system", "");
  s.system_in_user = node.get<std::string>("system_in_user", "");
  s.user = node.get<std::string>("user");
  s.assistant = node.get<std::string>("assistant");
  s.generation_prompt = node.get<std::string>("generation_prompt");
  s.trim = node.get<bool>("trim", false);
  s.add_special_tokens = node.get<bool>("add_special_tokens");
  const std::string name = node.get<std::string>("name", "custom");
  node.finish();
  for (const auto& [key, fmt] :
       {std::pair<const char*, const std::string*>{"user", &s.user}, {"assistant", &s.assistant}}) {
    if (fmt->find("{content}") == std::string::npos) throw ConfigError(node.where(key) + ": must contain {content}");
  }
  if (!s.system.empty() && s.system.find("{content}") == std::string::npos) {
    throw ConfigError(node.where("system") + ": must contain {content}");
  }
  if (!s.system_in_user.empty() && (s.system_in_user.find("{system}") == std::string::npos ||
                                    s.system_in_user.find("{content}") == std::string::npos)) {
    throw ConfigError(node.where("system_in_user") + ": must contain {system} and {content}");
  }
  ChatTemplate t;
  t.name_ = name;
  t.slots_ = std::make_shared<const Slots>(std::move(s));
  return t;
}

RenderedPrompt ChatTemplate::render(const std::vector<Message>& conversation, bool add_generation_prompt) const {
  const Slots& s = *slots_;
  auto text_of = [&](const std::string& c) { return s.trim ? trim(c) : c; };
  RenderedPrompt out;
  out.add_special_tokens = s.add_special_tokens;
  out.text = s.prefix;
  std::string system = s.default_system;
  bool has_system_message = false;
  size_t first = 0;
  if (!conversation.empty() && conversation[0].role == "system") {
    system = conversation[0].content;
    has_system_message = true;
    first = 1;
  }
  if (!s.system_in_user.empty() || s.system.empty()) {
    if (has_system_message && s.system_in_user.empty()) {
      throw ConfigError("prompt template '" + name_ + "' has no system slot");
    }
  } else if (has_system_message || !system.empty()) {
    out.text += substitute(s.system, text_of(system), "");
  }
  bool folded = s.system_in_user.empty() || system.empty();
  for (size_t i = first; i < conversation.size(); ++i) {
    const Message& m = conversation[i];
    if (m.role == "user") {
      std::string content = m.content;
      if (!folded) {
        content = substitute(s.system_in_user, m.content, system);
        folded = true;
      }
      out.text += substitute(s.user, text_of(content), "");
    } else if (m.role == "assistant") {
      out.text += substitute(s.assistant, text_of(m.content), "");
    } else if (m.role == "system") {
      if (s.system.empty()) {
        throw ConfigError("prompt template '" + name_ + "': a system message must come first");
      }
      out.text += substitute(s.system, text_of(m.content), "");
    } else {
      throw ConfigError("prompt template '" + name_ + "': unknown role '" + m.role + "'");
    }
  }
  if (add_generation_prompt) out.text += s.generation_prompt;
  return out;
}

RenderedPrompt ChatTemplate::prompt(const std::string& user, const std::string& system) const {
  std::vector<Message> conversation;
  if (!system.empty()) conversation.push_back({"system", system});
  conversation.push_back({"user", user});
  return render(conversation);
}

}  // namespace sf::tok
