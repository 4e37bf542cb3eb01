// `superficial tokenize`, `superficial detokenize` and `superficial bench tokenize`.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "model/model_files.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

std::string read_all(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw sf::IoError(path + ": cannot open");
  return read_all(in);
}

void print_ids(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

// Cases in a .inp file are separated by lines "__case__"; the separator's newlines are not part of
// the cases (a case's own trailing newline is written as an extra empty line before it).
const char* const kCaseSeparator = "\n__case__\n";

void setup(CLI::App& app) {
  auto* tok = app.add_subcommand("tokenize", "Encode stdin (or --cases FILE) to token ids, exactly as HF tokenizers");
  auto tok_path = std::make_shared<std::string>();
  auto add_special = std::make_shared<bool>(false);
  auto cases = std::make_shared<std::string>();
  tok->add_option("--tokenizer", *tok_path, "tokenizer.json, a model folder or a .gguf file")->required();
  tok->add_flag("--add-special", *add_special, "Apply the post-processor (BOS/EOS), as add_special_tokens=True");
  tok->add_option("--cases", *cases, "File of cases separated by lines '__case__'; one line of ids per case");
  tok->callback([=] {
    const auto t = sf::model::load_tokenizer(*tok_path);
    if (cases->empty()) {
      print_ids(t.encode(read_all(std::cin), *add_special));
      return;
    }
    for (const auto& c : sf::split(read_file(*cases), kCaseSeparator)) print_ids(t.encode(c, *add_special));
  });

  auto* detok = app.add_subcommand("detokenize", "Decode whitespace-separated token ids from stdin to text");
  auto detok_path = std::make_shared<std::string>();
  auto skip_special = std::make_shared<bool>(false);
  detok->add_option("--tokenizer", *detok_path, "tokenizer.json, a model folder or a .gguf file")->required();
  detok->add_flag("--skip-special", *skip_special, "Drop special tokens, as skip_special_tokens=True");
  detok->callback([=] {
    const auto t = sf::model::load_tokenizer(*detok_path);
    std::vector<int32_t> ids;
    std::string word;
    while (std::cin >> word) {
      try {
        size_t used = 0;
        const long long v = std::stoll(word, &used);
        if (used != word.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(word);
        ids.push_back(static_cast<int32_t>(v));
      } catch (const std::logic_error&) {
        throw sf::FormatError("stdin: token id " + std::to_string(ids.size()) + ": '" + word + "' is not an integer");
      }
    }
    const std::string text = t.decode(ids, *skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
  });

  auto* bench = sf::cli::bench_group(app).add_subcommand("tokenize", "Single-threaded encoding speed");
  auto bench_tok = std::make_shared<std::string>();
  auto input = std::make_shared<std::string>();
  bench->add_option("--tokenizer", *bench_tok, "tokenizer.json, a model folder or a .gguf file")->required();
  bench->add_option("--input", *input, "Text file; encoded line by line")->required();
  bench->callback([=] {
    const auto t = sf::model::load_tokenizer(*bench_tok);
    const std::string text = read_file(*input);
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
    // Rates use the process's CPU time (one thread, so the time of one core): on a shared machine
    // wall time also counts the time other processes held the core. Both are reported.
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    size_t tokens = 0;
    for (const auto& line : lines) tokens += t.encode(line).size();
    const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "{\"mb_per_s\": %.3f, \"tokens_per_s\": %.0f, \"bytes\": %zu, \"tokens\": %zu, \"cpu_seconds\": %.4f, "
        "\"wall_seconds\": %.4f}\n",
        static_cast<double>(text.size()) / 1e6 / cpu, static_cast<double>(tokens) / cpu, text.size(), tokens, cpu,
        wall);
  });
}

}  // namespace

SF_COMMAND(setup);
