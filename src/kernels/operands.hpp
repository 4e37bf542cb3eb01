#pragma once
// Operand checks shared by the kernels of this folder.
#include <torch/torch.h>

namespace sf::kernels {

// A defined float32 tensor on the CPU, contiguous, that does not require gradients.
inline bool cpu_float_contiguous(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() &&
         !t.requires_grad();
}

}  // namespace sf::kernels
