#pragma once
// The process heap's policy once a model's weights are in place (glibc malloc; elsewhere nothing).
//
// A forward pass allocates and frees the same few MiB-sized activations many times. Under glibc's
// default policy those blocks are mapped afresh (above its adaptive mmap threshold) or given back
// when the heap's free top exceeds its trim threshold, and every reuse then page-faults the memory
// in again and has the kernel zero it: a bf16 scoring pass of `bench speed` spent about 14% of its
// time in the page fault handler (perf). With blocks below 32 MiB kept on the heap and up to 128 MiB
// of free top kept for reuse, scoring ran 7-12% faster in bf16 and 2-5% in float32 on SmolLM2-135M,
// decoding and the peak resident size unchanged (alternated runs, README).
//
// The loading's own freed buffers (dequantised tensors, copies made before the weights moved into
// their arena) are handed back first, so the policy does not raise the process's resident size:
// the kept memory is at most the free top of 128 MiB plus what the passes themselves reuse.
// MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ set in the environment (glibc's own tunables)
// win: the policy then leaves the thresholds as the user set them.
namespace sf::heap {

constexpr int kKeepBelowBytes = 32 << 20;  // blocks below this come from the heap (glibc's maximum)
constexpr int kKeepFreeTopBytes = 128 << 20;

// Whether MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ is set (then the thresholds stay as set).
bool thresholds_set_in_environment();

// Returns the freed memory to the system, then sets the thresholds above (once per process;
// later calls only return the freed memory). Thread-safe.
void settle_after_load();

}  // namespace sf::heap
