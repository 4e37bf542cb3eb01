#include "kernels/rms_norm.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "kernels/avx2.hpp"
#include "kernels/avx512.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

// The arithmetic (rms_norm_math.inc), compiled once per instruction set.
#define SF_ISA_MATH "kernels/rms_norm_math.inc"
#include "kernels/each_isa.inc"

torch::Tensor norm_rows(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps,
                        Isa isa) {
  if (!rms_norm_applies(x, weight, delta, isa)) {
    throw ShapeError("rms_norm: operands do not fit the kernel: x " + std::to_string(x.dim()) + "-d with " +
                     std::to_string(x.numel()) + " elements, weight of " + std::to_string(weight.numel()));
  }
  torch::Tensor y = torch::empty_like(x);
  const int64_t n = x.size(-1), rows = x.numel() / n;
  float* xp = x.data_ptr<float>();
  const float* dp = delta.defined() ? delta.data_ptr<float>() : nullptr;
  const float* wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto norm_row = isa == Isa::kAvx512 ? on_avx512::norm_row : on_avx2::norm_row;
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

bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& delta, Isa isa) {
  if (!cpu_has(isa) || torch::GradMode::is_enabled()) return false;
  if (!cpu_float_contiguous(x) || !cpu_float_contiguous(weight) || x.dim() < 1 || weight.dim() != 1) return false;
  if (x.size(-1) != weight.size(0) || x.size(-1) == 0) return false;
  return !delta.defined() || (cpu_float_contiguous(delta) && delta.sizes() == x.sizes());
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Isa isa) {
  torch::Tensor in = x;
  return norm_rows(in, {}, weight, eps, isa);
}

torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps,
                           Isa isa) {
  if (!delta.defined()) throw ShapeError("add_rms_norm: no delta");
  return norm_rows(x, delta, weight, eps, isa);
}

}  // namespace sf::kernels
