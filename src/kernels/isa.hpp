#pragma once
// The x86-64 vector instruction sets the CPU kernels of this folder are written for, and whether
// this CPU has them (checked at run time: one binary serves every x86-64 CPU, and a kernel runs
// only where its instructions are).
namespace sf::kernels {

enum class Isa {
  kAvx2,    // AVX2 and FMA: Haswell and later, AMD Zen 1-3 (many HPC nodes: EPYC Rome, Milan)
  kAvx512,  // AVX-512F: Skylake-SP and later Xeons, AMD Zen 4 and later
};

// Whether this CPU has the instructions of `isa` and the environment lets the kernels use them:
// SUPERFICIAL_MAX_ISA=avx2 keeps them to AVX2 on an AVX-512 CPU (as an AVX2-only CPU runs), =none
// leaves products, norms, attention and top-k to torch; unset or avx512, what the CPU has. Read
// once, at the first call; another value is a ConfigError. kernels/widened_gemm's loops (compiled
// for AVX-512, AVX2 and plain x86-64) follow it too: under none, bf16 weights on a CPU without bf16
// arithmetic still take widened_gemm, as plain x86-64 code.
bool cpu_has(Isa isa);

// The widest of them that cpu_has: kAvx512, else kAvx2 (which cpu_has may deny too: the kernels
// then leave everything to torch).
Isa best_isa();

// "avx2" or "avx512", as benchmarks print it.
const char* isa_name(Isa isa);

}  // namespace sf::kernels
