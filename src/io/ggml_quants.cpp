#include "io/ggml_quants.hpp"

#include <cstring>

#include "core/error.hpp"

namespace sf::io {

namespace {

constexpr uint64_t kQK = 32;    // elements of a simple quant block
constexpr uint64_t kQKK = 256;  // elements of a k-quant super-block

const GgmlType kTypes[] = {
    {0, "F32", 1, 4, true},
    {1, "F16", 1, 2, true},
    {2, "Q4_0", kQK, 2 + kQK / 2, true},
    {3, "Q4_1", kQK, 4 + kQK / 2, true},
    {6, "Q5_0", kQK, 2 + 4 + kQK / 2, true},
    {7, "Q5_1", kQK, 4 + 4 + kQK / 2, true},
    {8, "Q8_0", kQK, 2 + kQK, true},
    {9, "Q8_1", kQK, 8 + kQK, false},
    {10, "Q2_K", kQKK, 84, false},
    {11, "Q3_K", kQKK, 110, false},
    {12, "Q4_K", kQKK, 4 + 12 + kQKK / 2, true},
    {13, "Q5_K", kQKK, 4 + 12 + kQKK / 8 + kQKK / 2, true},
    {14, "Q6_K", kQKK, kQKK / 2 + kQKK / 4 + kQKK / 16 + 2, true},
    {15, "Q8_K", kQKK, 292, false},
    {16, "IQ2_XXS", kQKK, 66, false},
    {17, "IQ2_XS", kQKK, 74, false},
    {18, "IQ3_XXS", kQKK, 98, false},
    {19, "IQ1_S", kQKK, 50, false},
    {20, "IQ4_NL", kQK, 18, false},
    {21, "IQ3_S", kQKK, 110, false},
    {22, "IQ2_S", kQKK, 82, false},
    {23, "IQ4_XS", kQKK, 136, false},
    {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},
    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},
    {29, "IQ1_M", kQKK, 56, false},
    {30, "BF16", 1, 2, true},
    {34, "TQ1_0", kQKK, 54, false},
    {35, "TQ2_0", kQKK, 66, false},
    {39, "MXFP4", kQK, 17, false},
};

// IEEE half and bfloat16 bit patterns to float.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits = 0;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant != 0) {
    // Subnormal half: normalise into a float.
    uint32_t e = 113;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3FF) << 13);
  } else {
    bits = sign;
  }
  float out = 0;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float out = 0;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
float f16(const uint8_t* p) { return half_to_float(u16(p)); }
uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// Simple quants: 32 elements per block; low nibbles are elements 0..15, high nibbles 16..31.
void q4_0(const uint8_t* b, float* y) {
  const float d = f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void q4_1(const uint8_t* b, float* y) {
  const float d = f16(b), m = f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5: the fifth bit of element j is bit j of the 32-bit qh.
void q5_0(const uint8_t* b, float* y) {
  const float d = f16(b);
  const uint32_t qh = u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int x0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
    const int x1 = static_cast<int>((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
    y[j] = static_cast<float>(x0) * d;
    y[j + 16] = static_cast<float>(x1) * d;
  }
}

void q5_1(const uint8_t* b, float* y) {
  const float d = f16(b), m = f16(b + 2);
  const uint32_t qh = u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const uint32_t x0 = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
    const uint32_t x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(x0) * d + m;
    y[j + 16] = static_cast<float>(x1) * d + m;
  }
}

void q8_0(const uint8_t* b, float* y) {
  const float d = f16(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// The 6-bit scale and min of sub-block j (0..7) packed in the 12 scale bytes of Q4_K/Q5_K.
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K: d, dmin (f16), 12 scale bytes, 128 bytes of nibbles; 8 sub-blocks of 32.
void q4_k(const uint8_t* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    uint8_t sc = 0, m = 0;
    scale_min_k4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

// Q5_K: as Q4_K plus 32 bytes of fifth bits (bit 2k / 2k+1 of qh[l] for the k-th pair of sub-blocks).
void q5_k(const uint8_t* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32) {
    uint8_t sc = 0, m = 0;
    scale_min_k4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, d (f16) last.
void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16(b + 208);
  for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int>((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

}  // namespace

std::optional<GgmlType> ggml_type(uint32_t id) {
  for (const auto& t : kTypes) {
    if (t.id == id) return t;
  }
  return std::nullopt;
}

void dequantize(const GgmlType& type, const uint8_t* src, float* dst, int64_t n) {
  const int64_t blocks = n / static_cast<int64_t>(type.block_elements);
  const int64_t be = static_cast<int64_t>(type.block_elements), bb = static_cast<int64_t>(type.block_bytes);
  void (*block_fn)(const uint8_t*, float*) = nullptr;
  switch (type.id) {
    case 0:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case 1:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16(src + 2 * i);
      return;
    case 30:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(u16(src + 2 * i));
      return;
    case 2:
      block_fn = q4_0;
      break;
    case 3:
      block_fn = q4_1;
      break;
    case 6:
      block_fn = q5_0;
      break;
    case 7:
      block_fn = q5_1;
      break;
    case 8:
      block_fn = q8_0;
      break;
    case 12:
      block_fn = q4_k;
      break;
    case 13:
      block_fn = q5_k;
      break;
    case 14:
      block_fn = q6_k;
      break;
    default:
      throw FormatError(std::string("GGML type ") + type.name + " cannot be dequantized here (supported: F32, F16, " +
                        "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
  }
  for (int64_t i = 0; i < blocks; ++i) block_fn(src + i * bb, dst + i * be);
}

}  // namespace sf::io
