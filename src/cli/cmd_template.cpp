// `superficial template check`: compares a preset's rendering with golden renderings that
// transformers' apply_chat_template produced at dev time (scripts/golden_tokenizer.py) for the
// chat_template of a model's tokenizer_config.json. We do not run Jinja: the golden file is looked
// up by the sha256 of the chat_template text, so a changed template is reported, not guessed.
// `superficial template render`: prints a preset's rendering of one prompt.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "tokenizer/chat_template.hpp"

namespace {

using nlohmann::json;

json read_json(const std::string& path) { return sf::read_json_file(path); }

// The chat_template of a tokenizer_config.json: a string, or a list of {name, template} whose
// "default" entry is used.
std::string chat_template_of(const json& cfg, const std::string& path) {
  if (!cfg.is_object() || !cfg.contains("chat_template") || cfg.at("chat_template").is_null()) {
    throw sf::FormatError(path + ": chat_template: missing (nothing to check)");
  }
  const json& t = cfg.at("chat_template");
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& e : t) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e.at("template").is_string()) {
        return e.at("template").get<std::string>();
      }
    }
  }
  throw sf::FormatError(path + ": chat_template: expected a string or a list with a 'default' entry");
}

// Shows a string with control characters escaped, for one-line diffs.
std::string visible(const std::string& s) {
  std::string out = json(s).dump();
  return out.substr(1, out.size() - 2);
}

void print_diff(const std::string& expected, const std::string& actual) {
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  const size_t from = i > 30 ? i - 30 : 0;
  std::printf("    first difference at byte %zu\n", i);
  std::printf("    expected: ...%s\n", visible(expected.substr(from, 80)).c_str());
  std::printf("    actual:   ...%s\n", visible(actual.substr(from, 80)).c_str());
}

std::vector<sf::tok::Message> messages_of(const json& list, const std::string& where) {
  std::vector<sf::tok::Message> out;
  if (!list.is_array()) throw sf::FormatError(where + ": messages: expected an array");
  for (const auto& m : list) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m.at("role").is_string() ||
        !m.at("content").is_string()) {
      throw sf::FormatError(where + ": messages: expected {role, content} strings");
    }
    out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  }
  return out;
}

void setup(CLI::App& app) {
  auto* tmpl = app.add_subcommand("template", "Prompt templates");
  tmpl->require_subcommand(1);

  auto* check = tmpl->add_subcommand("check", "Compare a preset with golden apply_chat_template renderings");
  auto config = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto golden = std::make_shared<std::string>("tests/fixtures/tokenizer/chat_templates.json");
  check->add_option("--tokenizer-config", *config, "The model's tokenizer_config.json (with a chat_template)")
      ->required();
  check->add_option("--template", *name, "Preset to check (default: the preset the golden file names)");
  check->add_option("--golden", *golden, "Golden renderings from scripts/golden_tokenizer.py")->capture_default_str();
  check->callback([=] {
    const std::string tmpl_text = chat_template_of(read_json(*config), *config);
    const std::string sha = sf::sha256_hex(tmpl_text);
    const json entries = read_json(*golden);
    const json* entry = nullptr;
    for (const auto& e : entries) {
      if (e.is_object() && e.value("chat_template_sha256", "") == sha) entry = &e;
    }
    if (!entry) {
      throw sf::ConfigError(*config + ": no golden rendering for this chat_template (sha256 " + sha + ") in " +
                            *golden + "; add it to scripts/golden_tokenizer.py");
    }
    const std::string preset = name->empty() ? entry->value("preset", "") : *name;
    const auto t = sf::tok::ChatTemplate::preset(preset);
    std::printf("chat_template sha256 %s (golden from %s)\npreset %s\n", sha.c_str(),
                entry->value("source", "?").c_str(), preset.c_str());
    size_t mismatches = 0;
    for (const auto& r : entry->at("renderings")) {
      const std::string sample = r.value("sample", "?");
      const std::string expected = r.at("text").get<std::string>();
      const std::string actual = t.render(messages_of(r.at("messages"), *golden + ": " + sample), true).text;
      if (expected == actual) {
        std::printf("  %s: match\n", sample.c_str());
      } else {
        ++mismatches;
        std::printf("  %s: MISMATCH\n", sample.c_str());
        print_diff(expected, actual);
      }
    }
    std::fflush(stdout);
    if (mismatches) {
      throw sf::ConfigError("preset '" + preset + "' does not match " + *config + "'s chat_template in " +
                            std::to_string(mismatches) + " sample(s)");
    }
  });

  auto* render = tmpl->add_subcommand("render", "Print a preset's rendering of one prompt");
  auto rname = std::make_shared<std::string>();
  auto user = std::make_shared<std::string>();
  auto system = std::make_shared<std::string>();
  render->add_option("--template", *rname, "Preset name")->required();
  render->add_option("--user", *user, "User message")->required();
  render->add_option("--system", *system, "System prompt");
  render->callback([=] {
    const auto r = sf::tok::ChatTemplate::preset(*rname).prompt(*user, *system);
    std::fwrite(r.text.data(), 1, r.text.size(), stdout);
  });
}

}  // namespace

SF_COMMAND(setup);
