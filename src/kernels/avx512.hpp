#pragma once
// AVX-512 helpers shared by the kernels of this folder. Include only from their .cpp files: every
// function here is compiled for AVX-512F and may run only where cpu_has(Isa::kAvx512) holds (kernels/isa.hpp).

// gcc 12 reports the self-initialised placeholders of its AVX-512 headers (_mm256_undefined_ps and
// the like, used by every shuffle) as uninitialised once they are inlined (gcc bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

namespace sf::kernels::avx512 {

#define SF_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline

// ---- The vocabulary that kernels written once for several instruction sets use (kernels/avx2.hpp
// has the same names for AVX2): a vector of kLanes floats, the lanes of a step that hold data, and
// the operations on them. Such a kernel is compiled once per instruction set with that set's
// target attribute (kernels/*_math.inc through kernels/each_isa.inc). exp_ps, at the end, is
// written once for both (kernels/exp_math.inc).

using Vec = __m512;
using Lanes = __mmask16;
constexpr int64_t kLanes = 16;
constexpr int kRegisters = 32;  // vector registers

SF_AVX512_INLINE Vec zero() { return _mm512_setzero_ps(); }
SF_AVX512_INLINE Vec set1(float x) { return _mm512_set1_ps(x); }
SF_AVX512_INLINE Vec load(const float* p) { return _mm512_loadu_ps(p); }
SF_AVX512_INLINE Vec load(Lanes in, const float* p) { return _mm512_maskz_loadu_ps(in, p); }  // 0 elsewhere
SF_AVX512_INLINE void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
SF_AVX512_INLINE void store(float* p, Lanes in, Vec v) { _mm512_mask_storeu_ps(p, in, v); }
SF_AVX512_INLINE Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
SF_AVX512_INLINE Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
SF_AVX512_INLINE Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
SF_AVX512_INLINE Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
SF_AVX512_INLINE Vec min(Vec a, Vec b) { return _mm512_min_ps(a, b); }
SF_AVX512_INLINE Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a·b
SF_AVX512_INLINE Vec round_nearest(Vec v) {
  return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
SF_AVX512_INLINE Lanes less(Vec a, Vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }  // a < b, not NaN
// p · 2^n for integral n in [-127, 128].
SF_AVX512_INLINE Vec scale2(Vec p, Vec n) { return _mm512_scalef_ps(p, n); }
SF_AVX512_INLINE Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }  // a·b + c
SF_AVX512_INLINE Vec select(Lanes in, Vec yes, Vec no) { return _mm512_mask_blend_ps(in, no, yes); }
// kLanes bf16 values (their bits) widened to float32: a bf16 value is the high half of a float32's
// bits.
SF_AVX512_INLINE Vec load_bf16(const uint16_t* p) {
  const __m512i bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16));
}
SF_AVX512_INLINE float reduce_add(Vec v) { return _mm512_reduce_add_ps(v); }
SF_AVX512_INLINE float reduce_max(Vec v) { return _mm512_reduce_max_ps(v); }
// The lanes whose byte of flags[0, kLanes) is non-zero (a bool mask row).
SF_AVX512_INLINE Lanes nonzero(const bool* flags) {
  const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(flags)));
  return _mm512_test_epi32_mask(bytes, bytes);
}

// Bit i set where lane i is in `in` and holds a NaN; where lane i is in `in` and a_i > b_i.
SF_AVX512_INLINE uint32_t nan_lanes(Lanes in, Vec v) { return _mm512_mask_cmp_ps_mask(in, v, v, _CMP_UNORD_Q); }
SF_AVX512_INLINE uint32_t greater_lanes(Lanes in, Vec a, Vec b) {
  return _mm512_mask_cmp_ps_mask(in, a, b, _CMP_GT_OQ);
}

// The lanes of a 16-float step that hold data when `remaining` floats are left: all 16, or the first
// `remaining` of them at a row's tail (for masked loads and stores).
__attribute__((target("avx512f"), always_inline)) inline __mmask16 lanes(int64_t remaining) {
  return static_cast<__mmask16>(remaining >= 16 ? 0xffff : (1u << remaining) - 1u);
}

// The same for a step of 32 16-bit values (bf16).
__attribute__((target("avx512f"), always_inline)) inline __mmask32 lanes32(int64_t remaining) {
  return static_cast<__mmask32>(remaining >= 32 ? 0xffffffffu : (1u << remaining) - 1u);
}

// Blocks (128 bits) of fold(p, q): p0+p2, p1+p3, q0+q2, q1+q3.
__attribute__((target("avx512f"), always_inline)) inline __m512 fold(__m512 p, __m512 q) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(3, 2, 3, 2)));
}

// Blocks of pair(u, v): u0+u1, u2+u3, v0+v1, v2+v3.
__attribute__((target("avx512f"), always_inline)) inline __m512 pair(__m512 u, __m512 v) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The lane sums of 8 vectors at once (23 shuffles and adds instead of 8 × 8): pairs of vectors
// folded into one by adding their 128-bit blocks, until each block holds the partial sums of one
// input, then the blocks' lanes added.
__attribute__((target("avx512f"), always_inline)) inline void sum8(__m512 a, __m512 b, __m512 c, __m512 d, __m512 e,
                                                                   __m512 f, __m512 g, __m512 h, float* out) {
  const __m512 z0 = pair(fold(a, b), fold(c, d));  // blocks: a, b, c, d
  const __m512 z1 = pair(fold(e, f), fold(g, h));  // blocks: e, f, g, h
  // Lanes of each block i: (z0_0+z0_2, z1_0+z1_2, z0_1+z0_3, z1_1+z1_3), then the halves added:
  // lane 0 of block i is the sum of input i, lane 1 that of input 4 + i.
  __m512 t = _mm512_add_ps(_mm512_unpacklo_ps(z0, z1), _mm512_unpackhi_ps(z0, z1));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm512_mask_storeu_ps(out, 0xff, _mm512_permutexvar_ps(order, t));
}

#define SF_VOCAB_INLINE SF_AVX512_INLINE
#include "kernels/exp_math.inc"
#undef SF_VOCAB_INLINE

#undef SF_AVX512_INLINE

}  // namespace sf::kernels::avx512
