// What every fuzz target shares: the target table, the exception guard and scratch files.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <typeinfo>

#include "core/error.hpp"
#include "fuzz/targets/targets.hpp"

namespace sf::fuzz {

const std::vector<NamedTarget>& targets() {
  static const std::vector<NamedTarget> all = {{"safetensors", safetensors},
                                               {"model_config", model_config},
                                               {"tokenizer_json", tokenizer_json},
                                               {"tokenizer_text", tokenizer_text},
                                               {"job", job},
                                               {"task", task},
                                               {"task_rows", task_rows},
                                               {"h5", h5},
                                               {"gguf", gguf}};
  return all;
}

std::optional<std::string> guarded(const std::function<void()>& body) {
  try {
    body();
  } catch (const sf::Error&) {
    return std::nullopt;  // the expected way to refuse an input
  } catch (const std::exception& e) {
    return std::string("untyped exception ") + typeid(e).name() + ": " + e.what();
  } catch (...) {
    return std::string("non-standard exception");
  }
  return std::nullopt;
}

std::filesystem::path source_dir() { return SF_FUZZ_SOURCE_DIR; }

namespace {

// The scratch folder of this process, removed at exit.
struct Scratch {
  std::filesystem::path dir;
  Scratch() {
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    dir = base / ("superficial-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

std::filesystem::path scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  static const Scratch scratch;
  const std::filesystem::path file = scratch.dir / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();  // the scratch folder must work, or every input would look refused
  return file;
}

}  // namespace sf::fuzz
