#pragma once
// Operand checks shared by the kernels of this folder.
#include <torch/torch.h>

namespace sf::kernels {

// A float32 tensor on the CPU.
inline bool is_cpu_float(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// A bf16 tensor on the CPU.
inline bool is_cpu_bf16(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kBFloat16; }

// An optional bias of n outputs: undefined, or a float32 [n] on the CPU, contiguous, that does not
// require gradients.
inline bool bias_fits(const torch::Tensor& bias, int64_t n) {
  return !bias.defined() ||
         (is_cpu_float(bias) && !bias.requires_grad() && bias.dim() == 1 && bias.size(0) == n && bias.is_contiguous());
}

// A defined float32 tensor on the CPU, contiguous, that does not require gradients.
inline bool cpu_float_contiguous(const torch::Tensor& t) {
  return t.defined() && is_cpu_float(t) && t.is_contiguous() && !t.requires_grad();
}

}  // namespace sf::kernels
