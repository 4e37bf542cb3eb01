#pragma once
// AVX2 (with FMA) counterparts of kernels/avx512.hpp's vocabulary, under the same names, for the
// kernels written once for both instruction sets (attention_math.inc, rms_norm, rope). Include only
// from the kernels' .cpp files: every function here is compiled for AVX2 and FMA and may run only
// where cpu_has(Isa::kAvx2) holds (kernels/isa.hpp). AVX2 has no mask registers: the lanes of a step
// are a vector of 8 ints, all bits set where a lane holds data.
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
SF_AVX2_INLINE Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }  // a·b + c
SF_AVX2_INLINE Vec select(Lanes in, Vec yes, Vec no) { return _mm256_blendv_ps(no, yes, _mm256_castsi256_ps(in)); }

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

// Cephes expf as avx512::exp_ps computes it (the same steps and constants, so the same values):
// e^x = 2^n · e^r with n = round(x / ln 2), |r| <= ln(2)/2, e^r by a degree-7 polynomial; 0 below
// -88. 2^n is applied as 2^(n - n/2) · 2^(n/2), each factor a normal float, as AVX2 has no scalef.
SF_AVX2_INLINE Vec exp_ps(Vec x) {
  const Vec underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-88.0f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.0f));
  const Vec n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  Vec r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  Vec p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
  p = _mm256_mul_ps(_mm256_mul_ps(p, pow2(_mm256_sub_epi32(ni, half))), pow2(half));
  return _mm256_andnot_ps(underflow, p);
}

#undef SF_AVX2_INLINE

}  // namespace sf::kernels::avx2
