#include "testutil/golden.hpp"

#include <stdexcept>
#include <string>

#include "io/safetensors.hpp"
#include "testutil/testutil.hpp"

namespace sf::test {

std::map<std::string, torch::Tensor> read_reference(const std::filesystem::path& file) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : io::read_safetensors(file)) out[name] = t;
  return out;
}

std::filesystem::path golden_model(const std::string& variant) { return fixtures_dir() / "models" / variant; }

double logit_tolerance(torch::DeviceType device, torch::ScalarType dtype) {
  const bool known_device = device == torch::kCPU || device == torch::kCUDA;
  if (known_device && dtype == torch::kFloat32) return 1e-4;
  if (known_device && dtype == torch::kBFloat16) return 0.25;
  throw std::invalid_argument(std::string("no golden tolerance for ") + c10::DeviceTypeName(device) + " " +
                              c10::toString(dtype));
}

double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  const torch::Tensor m = mask.to(torch::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).abs().masked_select(m).max().item<double>();
}

std::vector<std::vector<int32_t>> unpad(const torch::Tensor& ids, const torch::Tensor& mask) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    std::vector<int32_t> s;
    for (int64_t t = 0; t < ids.size(1); ++t) {
      if (mask[b][t].item<int64_t>() != 0) s.push_back(static_cast<int32_t>(ids[b][t].item<int64_t>()));
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace sf::test
