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

// The tolerance table of the golden model tests: the largest |Δlogit| (and |Δhidden|) allowed against
// the reference implementation's files at real positions, by device and dtype.
//   device  dtype  tolerance  why
//   cpu     fp32   1e-4       same math; summation order differs (BLAS, fused attention, packing)
//   cpu     bf16   0.25       bf16 weights and activations through 2 layers against fp32 references
//   cuda    fp32   1e-4       same math; cuBLAS (TF32 off in libtorch by default for fp32 matmul)
//   cuda    bf16   0.25       as on the CPU
// Any other pair is a std::invalid_argument: a new device or dtype needs its row first.
double logit_tolerance(torch::DeviceType device, torch::ScalarType dtype);

// A model split over ranks (tensor parallelism) against the same model whole, same device and
// dtype: only the order of the sums differs.
constexpr double kSplitTolerance = 1e-5;

// The unpadded sequences of a padded batch: row b's ids where mask is 1.
std::vector<std::vector<int32_t>> unpad(const torch::Tensor& ids, const torch::Tensor& mask);

}  // namespace sf::test
