#include "kernels/rms_norm.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

// One row of n floats: x += delta (when given), y = w ⊙ x · 1/sqrt(mean(x²) + eps).
__attribute__((target("avx512f"))) void norm_row(float* x, const float* delta, const float* w, float* y, int64_t n,
                                                 float eps) {
  __m512 sq = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = avx512::lanes(n - j);
    __m512 v = _mm512_maskz_loadu_ps(in, x + j);
    if (delta) {
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(in, delta + j));
      _mm512_mask_storeu_ps(x + j, in, v);
    }
    sq = _mm512_fmadd_ps(v, v, sq);
  }
  const __m512 r = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(sq) / static_cast<float>(n) + eps));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = avx512::lanes(n - j);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, x + j), r);
    _mm512_mask_storeu_ps(y + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, w + j), v));
  }
}

torch::Tensor norm_rows(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps) {
  if (!rms_norm_applies(x, weight, delta)) {
    throw ShapeError("rms_norm: operands do not fit the kernel: x " + std::to_string(x.dim()) + "-d with " +
                     std::to_string(x.numel()) + " elements, weight of " + std::to_string(weight.numel()));
  }
  torch::Tensor y = torch::empty_like(x);
  const int64_t n = x.size(-1), rows = x.numel() / n;
  float* xp = x.data_ptr<float>();
  const float* dp = delta.defined() ? delta.data_ptr<float>() : nullptr;
  const float* wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Rows split over the threads only when there are many (scoring); a decoding step's few rows are
  // cheaper than starting the threads.
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      norm_row(xp + i * n, dp ? dp + i * n : nullptr, wp, yp + i * n, n, static_cast<float>(eps));
    }
  });
  return y;
}

}  // namespace

bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& delta) {
  if (!cpu_has(Isa::kAvx512) || torch::GradMode::is_enabled()) return false;
  if (!cpu_float_contiguous(x) || !cpu_float_contiguous(weight) || x.dim() < 1 || weight.dim() != 1) return false;
  if (x.size(-1) != weight.size(0) || x.size(-1) == 0) return false;
  return !delta.defined() || (cpu_float_contiguous(delta) && delta.sizes() == x.sizes());
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  torch::Tensor in = x;
  return norm_rows(in, {}, weight, eps);
}

torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps) {
  if (!delta.defined()) throw ShapeError("add_rms_norm: no delta");
  return norm_rows(x, delta, weight, eps);
}

}  // namespace sf::kernels
