#include "kernels/widened_gemm.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "kernels/isa.hpp"
#include "kernels/operands.hpp"

namespace sf::kernels {

namespace {

// Most bytes of widened weights per block. Each block's GEMM packs all of x again, so blocks larger
// than a core's L2 cache paid off: on SmolLM2's shapes, 64 to 1024 rows, `bench gemm-small --dtype
// bfloat16` measured 0.78-0.98x float32 BLAS with 2 MiB against 0.64-0.95x with 512 KiB (Ice Lake,
// 2 cores, run after run).
constexpr int64_t kBlockBytes = int64_t{2} << 20;

// dst[i] = bf16 src[i] as float32 (its bits the high half), exactly.
__attribute__((always_inline)) inline void widen_loop(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, sizeof bits);
  }
}

// y[i] rounded to bf16 (to nearest even; NaN to the quiet NaN, as c10::BFloat16), then bias[i] added
// (if any).
__attribute__((always_inline)) inline void round_add_loop(float* y, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, y + i, sizeof bits);
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    bits = (bits & 0x7fffffffu) > 0x7f800000u ? 0x7fc00000u : rounded;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    y[i] = v + (bias ? bias[i] : 0.0f);
  }
}

// The two loops compiled (and vectorised by the compiler) for AVX-512, AVX2 and plain x86-64; the
// widest that cpu_has allows runs (kernels/isa.hpp).
struct Loops {
  void (*widen)(const uint16_t*, float*, int64_t);
  void (*round_add)(float*, const float*, int64_t);
};

__attribute__((target("avx512f"))) void widen_avx512(const uint16_t* s, float* d, int64_t n) { widen_loop(s, d, n); }
__attribute__((target("avx2"))) void widen_avx2(const uint16_t* s, float* d, int64_t n) { widen_loop(s, d, n); }
void widen_plain(const uint16_t* s, float* d, int64_t n) { widen_loop(s, d, n); }
__attribute__((target("avx512f"))) void round_add_avx512(float* y, const float* b, int64_t n) {
  round_add_loop(y, b, n);
}
__attribute__((target("avx2"))) void round_add_avx2(float* y, const float* b, int64_t n) { round_add_loop(y, b, n); }
void round_add_plain(float* y, const float* b, int64_t n) { round_add_loop(y, b, n); }

Loops loops() {
  if (cpu_has(Isa::kAvx512)) return {widen_avx512, round_add_avx512};
  if (cpu_has(Isa::kAvx2)) return {widen_avx2, round_add_avx2};
  return {widen_plain, round_add_plain};
}

}  // namespace

bool widened_gemm_applies(const torch::Tensor& x, const Projection& p) {
  const torch::Tensor& w = p.weight;
  if (!is_cpu_float(x) || !is_cpu_bf16(w) || w.dim() != 2 || !w.is_contiguous()) return false;
  if (x.requires_grad() || w.requires_grad() || x.dim() < 1 || x.size(-1) != w.size(1)) return false;
  return bias_fits(p.bias, w.size(0));
}

torch::Tensor widened_gemm(const torch::Tensor& x, const Projection& p) {
  if (!widened_gemm_applies(x, p)) {
    throw ShapeError("widened_gemm: operands do not fit: x " + std::to_string(x.dim()) + "-d " +
                     std::string(c10::toString(x.scalar_type())) + ", weight " + std::to_string(p.weight.dim()) +
                     "-d " + std::string(c10::toString(p.weight.scalar_type())));
  }
  torch::InferenceMode guard;
  const Loops loop = loops();
  const int64_t K = x.size(-1), N = p.weight.size(0);
  const torch::Tensor xr = x.reshape({-1, K}).to(torch::kBFloat16).to(torch::kFloat32);  // [M,K], rounded
  const int64_t M = xr.size(0);
  torch::Tensor y = torch::empty({M, N}, xr.options());  // [M,N]
  if (M > 0 && N > 0 && K > 0) {
    // Blocks of at most kBlockBytes of widened rows, as many per thread, each thread widening its own
    // and multiplying them by a one-thread GEMM (BLAS inside a parallel region runs on one thread).
    const int64_t threads = at::get_num_threads();
    const int64_t most = std::max<int64_t>(16, kBlockBytes / (4 * K) / 16 * 16);
    const int64_t per_thread = (N + threads * most - 1) / (threads * most);
    const int64_t blocks = threads * per_thread;
    const int64_t rows = std::min(most, ((N + blocks - 1) / blocks + 15) / 16 * 16);
    at::parallel_for(0, (N + rows - 1) / rows, 1, [&](int64_t begin, int64_t end) {
      torch::InferenceMode thread_guard;                              // per thread: y is an inference tensor
      torch::Tensor widened = torch::empty({rows, K}, xr.options());  // [rows,K]
      for (int64_t b = begin; b < end; ++b) {
        const int64_t n0 = b * rows, n = std::min(rows, N - n0);
        torch::Tensor w = widened.narrow(0, 0, n);
        loop.widen(reinterpret_cast<const uint16_t*>(p.weight.data_ptr<at::BFloat16>()) + n0 * K, w.data_ptr<float>(),
                   n * K);
        torch::Tensor out = y.narrow(1, n0, n);  // [M,n], rows N apart: BLAS writes it in place
        at::mm_out(out, xr, w.t());
      }
    });
  } else {
    y.zero_();
  }
  // Each sum rounded to bf16, then the bias.
  float* data = y.data_ptr<float>();
  const float* bias = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) loop.round_add(data + m * N, bias, N);
  });
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = N;
  return y.view(shape);
}

}  // namespace sf::kernels
