#include "kernels/isa.hpp"

#include <cstdlib>
#include <string>

#include "core/error.hpp"

namespace sf::kernels {

namespace {

// The most the environment lets the kernels use: SUPERFICIAL_MAX_ISA = avx512 (or unset: what the CPU
// has), avx2, or none (no hand-written kernel; torch's paths throughout). 2, 1 or 0.
int max_isa() {
  const char* v = std::getenv("SUPERFICIAL_MAX_ISA");
  const std::string s = v ? v : "";
  if (s.empty() || s == "avx512") return 2;
  if (s == "avx2") return 1;
  if (s == "none") return 0;
  throw ConfigError("SUPERFICIAL_MAX_ISA: unknown value '" + s + "' (avx512, avx2 or none)");
}

}  // namespace

bool cpu_has(Isa isa) {
  static const int cap = max_isa();
  static const bool avx2 = cap >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool avx512 = cap >= 2 && __builtin_cpu_supports("avx512f");
  return isa == Isa::kAvx512 ? avx512 : avx2;
}

Isa best_isa() { return cpu_has(Isa::kAvx512) ? Isa::kAvx512 : Isa::kAvx2; }

const char* isa_name(Isa isa) { return isa == Isa::kAvx512 ? "avx512" : "avx2"; }

}  // namespace sf::kernels
