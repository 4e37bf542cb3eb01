#include "kernels/rope.hpp"

#include <ATen/Parallel.h>

#include <string>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

// The heads of one position: x [heads, 2·half], c and s [half].
__attribute__((target("avx512f"))) void rotate(float* x, int64_t heads, int64_t half, const float* c, const float* s) {
  for (int64_t h = 0; h < heads; ++h) {
    float* x1 = x + h * 2 * half;
    float* x2 = x1 + half;
    for (int64_t i = 0; i < half; i += 16) {
      const __mmask16 in = avx512::lanes(half - i);
      const __m512 a = _mm512_maskz_loadu_ps(in, x1 + i), b = _mm512_maskz_loadu_ps(in, x2 + i);
      const __m512 cv = _mm512_maskz_loadu_ps(in, c + i), sv = _mm512_maskz_loadu_ps(in, s + i);
      _mm512_mask_storeu_ps(x1 + i, in, _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
      _mm512_mask_storeu_ps(x2 + i, in, _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
    }
  }
}

}  // namespace

bool rope_applies(const torch::Tensor& x, int64_t heads, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (!cpu_has(Isa::kAvx512) || torch::GradMode::is_enabled()) return false;
  if (!cpu_float_contiguous(x) || !cpu_float_contiguous(cos) || !cpu_float_contiguous(sin)) return false;
  if (x.dim() != 3 || cos.dim() != 3 || cos.sizes() != sin.sizes() || heads <= 0) return false;
  const int64_t half = cos.size(2);
  return half > 0 && x.size(0) == cos.size(0) && x.size(1) == cos.size(1) && x.size(2) == heads * 2 * half;
}

void rope_(const std::vector<Rotated>& xs, const torch::Tensor& cos, const torch::Tensor& sin) {
  for (const Rotated& r : xs) {
    if (!rope_applies(r.x, r.heads, cos, sin)) {
      throw ShapeError("rope: operands do not fit the kernel: x " + std::to_string(r.x.dim()) + "-d with " +
                       std::to_string(r.x.numel()) + " elements, " + std::to_string(r.heads) + " heads, cos " +
                       std::to_string(cos.dim()) + "-d");
    }
  }
  const int64_t positions = cos.size(0) * cos.size(1), half = cos.size(2);
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  at::parallel_for(0, positions, 16, [&](int64_t begin, int64_t end) {
    for (const Rotated& r : xs) {
      float* x = r.x.data_ptr<float>();
      for (int64_t p = begin; p < end; ++p)
        rotate(x + p * r.heads * 2 * half, r.heads, half, cp + p * half, sp + p * half);
    }
  });
}

}  // namespace sf::kernels
