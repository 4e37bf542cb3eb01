#pragma once
// Operand checks shared by the kernels of this folder.
#include <torch/torch.h>

namespace sf::kernels {

// A float32 tensor on the CPU.
inline bool is_cpu_float(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// A defined float32 tensor on the CPU, contiguous, that does not require gradients.
inline bool cpu_float_contiguous(const torch::Tensor& t) {
  return t.defined() && is_cpu_float(t) && t.is_contiguous() && !t.requires_grad();
}

}  // namespace sf::kernels
