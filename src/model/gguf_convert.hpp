#pragma once
// `superficial convert`: a GGUF model as a Hugging Face folder that transformers loads:
//   config.json, model.safetensors   the dequantized weights (float32 or bfloat16), HF names and
//                                    row order (model/gguf_model.hpp), via CausalLM::save
//   tokenizer.json                   the document the model's tokenizer is read from
//                                    (model/model_files.hpp)
//   tokenizer_config.json            PreTrainedTokenizerFast with the BOS/EOS/UNK/pad tokens and
//                                    the file's chat template
// `out` must not exist or be empty.
#include <torch/torch.h>

#include <filesystem>

namespace sf::model {

void convert_gguf(const std::filesystem::path& gguf, const std::filesystem::path& out, torch::Dtype dtype);

}  // namespace sf::model
