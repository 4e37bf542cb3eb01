#pragma once
// Shared helpers of the golden tests (numerics against files the reference implementation wrote:
// scripts/golden*.py): reading a reference.safetensors by tensor name, comparing at real positions
// of a padded batch, and the sequences of a padded batch.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sf::test {

// Every tensor of a reference file (e.g. <fixture>/reference.safetensors), by name.
std::map<std::string, torch::Tensor> read_reference(const std::filesystem::path& file);

// tests/fixtures/models/<variant>: a golden tiny model folder.
std::filesystem::path golden_model(const std::string& variant);

// Max |a - b| over the positions where `mask` [B,T] is 1 (a, b: [B,T,...]).
double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask);

// The unpadded sequences of a padded batch: row b's ids where mask is 1.
std::vector<std::vector<int32_t>> unpad(const torch::Tensor& ids, const torch::Tensor& mask);

}  // namespace sf::test
