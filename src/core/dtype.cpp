#include "core/dtype.hpp"

#include "core/error.hpp"

namespace sf {

torch::Dtype parse_dtype(const std::string& name, const std::string& where) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw ConfigError(where + ": dtype '" + name + "' is not one of float32, bfloat16, float16");
}

}  // namespace sf
