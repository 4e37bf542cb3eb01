#pragma once
// AVX2 (with FMA) counterparts of kernels/avx512.hpp's vocabulary, under the same names, for the
// kernels written once for both instruction sets (kernels/*_math.inc, compiled per set by
// kernels/each_isa.inc). Include only from the kernels' .cpp files: every function here is compiled
// for AVX2 and FMA and may run only where cpu_has(Isa::kAvx2) holds (kernels/isa.hpp). AVX2 has no
// mask registers: the lanes of a step are a vector of 8 ints, all bits set where a lane holds data.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace sf::kernels::avx2 {

#define SF_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

using Vec = __m256;
using Lanes = __m256i;
constexpr int64_t kLanes = 8;
constexpr int kRegisters = 16;

// The lanes of an 8-float step that hold data when `remaining` floats are left: all 8, or the first
// `remaining` of them at a row's tail.
SF_AVX2_INLINE Lanes lanes(int64_t remaining) {
  const int n = static_cast<int>(std::min<int64_t>(remaining, kLanes));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

SF_AVX2_INLINE Vec zero() { return _mm256_setzero_ps(); }
SF_AVX2_INLINE Vec set1(float x) { return _mm256_set1_ps(x); }
SF_AVX2_INLINE Vec load(const float* p) { return _mm256_loadu_ps(p); }
// Lanes outside `in` read as 0 and are not touched in memory (no fault past the end of a buffer).
SF_AVX2_INLINE Vec load(Lanes in, const float* p) { return _mm256_maskload_ps(p, in); }
SF_AVX2_INLINE void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
SF_AVX2_INLINE void store(float* p, Lanes in, Vec v) { _mm256_maskstore_ps(p, in, v); }
SF_AVX2_INLINE Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
SF_AVX2_INLINE Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
SF_AVX2_INLINE Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
SF_AVX2_INLINE Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
SF_AVX2_INLINE Vec min(Vec a, Vec b) { return _mm256_min_ps(a, b); }
SF_AVX2_INLINE Vec fnmadd(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a·b
SF_AVX2_INLINE Vec round_nearest(Vec v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
SF_AVX2_INLINE Lanes less(Vec a, Vec b) {  // a < b, not NaN
  return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
SF_AVX2_INLINE Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }  // a·b + c
SF_AVX2_INLINE Vec select(Lanes in, Vec yes, Vec no) { return _mm256_blendv_ps(no, yes, _mm256_castsi256_ps(in)); }
// kLanes bf16 values (their bits) widened to float32: a bf16 value is the high half of a float32's
// bits.
SF_AVX2_INLINE Vec load_bf16(const uint16_t* p) {
  const __m256i bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
}

// The sum of the 4 lanes of a 128-bit vector.
SF_AVX2_INLINE float sum4(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
SF_AVX2_INLINE float reduce_add(Vec v) {
  return sum4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
SF_AVX2_INLINE float reduce_max(Vec v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
}

// The lanes whose byte of flags[0, kLanes) is non-zero (a bool mask row).
SF_AVX2_INLINE Lanes nonzero(const bool* flags) {
  const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(flags)));
  return _mm256_cmpgt_epi32(bytes, _mm256_setzero_si256());
}

// Bit i set where lane i is in `in` and holds a NaN; where lane i is in `in` and a_i > b_i.
SF_AVX2_INLINE uint32_t nan_lanes(Lanes in, Vec v) {
  return static_cast<uint32_t>(
      _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_castsi256_ps(in))));
}
SF_AVX2_INLINE uint32_t greater_lanes(Lanes in, Vec a, Vec b) {
  return static_cast<uint32_t>(
      _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ), _mm256_castsi256_ps(in))));
}

// The lane sums of 8 vectors at once: out[i] = Σ lanes of input i. Two rounds of horizontal adds
// leave each 128-bit half with partial sums of four inputs; the halves are then added.
SF_AVX2_INLINE void sum8(Vec a, Vec b, Vec c, Vec d, Vec e, Vec f, Vec g, Vec h, float* out) {
  const Vec abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));  // halves: a b c d
  const Vec efgh = _mm256_hadd_ps(_mm256_hadd_ps(e, f), _mm256_hadd_ps(g, h));  // halves: e f g h
  _mm256_storeu_ps(out,
                   _mm256_add_ps(_mm256_permute2f128_ps(abcd, efgh, 0x20), _mm256_permute2f128_ps(abcd, efgh, 0x31)));
}

// 2^e for integer lanes e in [-126, 127] (the exponent field set directly).
SF_AVX2_INLINE Vec pow2(__m256i e) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}
// p · 2^n for integral n in [-127, 128], applied as 2^(n - n/2) · 2^(n/2), each factor a normal
// float (AVX2 has no scalef).
SF_AVX2_INLINE Vec scale2(Vec p, Vec n) {
  const __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
  return _mm256_mul_ps(_mm256_mul_ps(p, pow2(_mm256_sub_epi32(ni, half))), pow2(half));
}

#define SF_VOCAB_INLINE SF_AVX2_INLINE
#include "kernels/exp_math.inc"
#undef SF_VOCAB_INLINE

#undef SF_AVX2_INLINE

}  // namespace sf::kernels::avx2
