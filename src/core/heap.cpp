#include "core/heap.hpp"

#include <cstdlib>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/log.hpp"

namespace sf::heap {

bool thresholds_set_in_environment() {
  return std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_");
}

void settle_after_load() {
#if defined(__GLIBC__)
  malloc_trim(0);
  static std::once_flag once;
  std::call_once(once, [] {
    if (thresholds_set_in_environment()) {
      spdlog::debug("heap: MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ is set; glibc's thresholds left as set");
      return;
    }
    if (mallopt(M_MMAP_THRESHOLD, kKeepBelowBytes) != 1 || mallopt(M_TRIM_THRESHOLD, kKeepFreeTopBytes) != 1)
      spdlog::warn("heap: glibc refused the inference thresholds; allocations keep the default policy");
  });
#endif
}

}  // namespace sf::heap
