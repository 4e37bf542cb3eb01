#include "kernels/rope.hpp"

#include <ATen/Parallel.h>

#include <string>

#include "core/error.hpp"
#include "kernels/avx2.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

// The arithmetic (rope_math.inc), compiled once per instruction set.
#define SF_ISA_MATH "kernels/rope_math.inc"
#include "kernels/each_isa.inc"

}  // namespace

bool rope_applies(const torch::Tensor& x, int64_t heads, const torch::Tensor& cos, const torch::Tensor& sin, Isa isa) {
  if (!cpu_has(isa) || torch::GradMode::is_enabled()) return false;
  if (!cpu_float_contiguous(x) || !cpu_float_contiguous(cos) || !cpu_float_contiguous(sin)) return false;
  if (x.dim() != 3 || cos.dim() != 3 || cos.sizes() != sin.sizes() || heads <= 0) return false;
  const int64_t half = cos.size(2);
  return half > 0 && x.size(0) == cos.size(0) && x.size(1) == cos.size(1) && x.size(2) == heads * 2 * half;
}

void rope_(const std::vector<Rotated>& xs, const torch::Tensor& cos, const torch::Tensor& sin, Isa isa) {
  for (const Rotated& r : xs) {
    if (!rope_applies(r.x, r.heads, cos, sin, isa)) {
      throw ShapeError("rope: operands do not fit the kernel: x " + std::to_string(r.x.dim()) + "-d with " +
                       std::to_string(r.x.numel()) + " elements, " + std::to_string(r.heads) + " heads, cos " +
                       std::to_string(cos.dim()) + "-d");
    }
  }
  const int64_t positions = cos.size(0) * cos.size(1), half = cos.size(2);
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  const auto rotate = isa == Isa::kAvx512 ? on_avx512::rotate : on_avx2::rotate;
  at::parallel_for(0, positions, 16, [&](int64_t begin, int64_t end) {
    for (const Rotated& r : xs) {
      float* x = r.x.data_ptr<float>();
      for (int64_t p = begin; p < end; ++p)
        rotate(x + p * r.heads * 2 * half, r.heads, half, cp + p * half, sp + p * half);
    }
  });
}

}  // namespace sf::kernels
