#pragma once
// Compute dtypes by the names used in job files, model folders and CLI flags.
#include <torch/torch.h>

#include <string>

namespace sf {

// "float32" | "bfloat16" | "float16" → the torch dtype; ConfigError naming `where` otherwise.
torch::Dtype parse_dtype(const std::string& name, const std::string& where);

}  // namespace sf
