// `superficial convert FILE.gguf --out DIR`: a GGUF model as a Hugging Face folder.
#include <cstdio>
#include <string>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "model/gguf_convert.hpp"

namespace {

void setup(CLI::App& app) {
  struct Convert {
    std::string gguf, out, dtype = "float32";
  };
  auto c = std::make_shared<Convert>();
  auto* cmd = app.add_subcommand("convert",
                                 "Write a GGUF model as a Hugging Face folder (safetensors, config.json, "
                                 "tokenizer.json) that transformers loads");
  cmd->add_option("gguf", c->gguf, "The .gguf file")->required();
  cmd->add_option("--out", c->out, "Output folder (must not exist or be empty)")->required();
  cmd->add_option("--dtype", c->dtype, "Weights as float32 or bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  cmd->callback([c] {
    sf::model::convert_gguf(c->gguf, c->out, c->dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32);
    std::printf("%s: written from %s\n", c->out.c_str(), c->gguf.c_str());
  });
}

}  // namespace

SF_COMMAND(setup);
