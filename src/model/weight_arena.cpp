#include "model/weight_arena.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "core/error.hpp"

namespace sf::model {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t to) {
  if (n > SIZE_MAX - (to - 1)) throw ShapeError("weight arena: " + std::to_string(n) + " bytes overflow");
  return (n + to - 1) / to * to;
}

}  // namespace

void pack_into_huge_pages(const std::vector<torch::Tensor*>& tensors) {
  std::vector<std::pair<torch::Tensor*, size_t>> placed;  // tensor, offset in the arena
  size_t total = 0;
  for (torch::Tensor* t : tensors) {
    if (!t->defined() || !t->device().is_cpu()) continue;
    placed.emplace_back(t, total);
    total = round_up(total + t->nbytes(), kAlign);
  }
  if (total < kHugePage) return;
  const size_t bytes = round_up(total, kHugePage);
  void* base = std::aligned_alloc(kHugePage, bytes);
  if (!base) throw std::bad_alloc();
  const std::shared_ptr<void> arena(base, std::free);
  madvise(base, bytes, MADV_HUGEPAGE);  // advice only: without huge pages the arena still works
  for (auto& [t, offset] : placed) {
    void* at = static_cast<char*>(base) + offset;
    torch::Tensor packed = torch::from_blob(
        at, t->sizes(), [arena](void*) {}, t->options().requires_grad(false));
    packed.copy_(*t);
    packed.set_requires_grad(t->requires_grad());
    *t = packed;
  }
}

}  // namespace sf::model
