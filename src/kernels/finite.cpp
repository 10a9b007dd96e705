#include "kernels/finite.h"

#include <atomic>
#include <cstring>

#include "kernels/parallel.h"

namespace zotune::kernels {

namespace {

// Any exponent-all-ones value in [0, n)? Branch-free OR over a block so the
// compiler vectorizes it; the exact index is found by the caller's rescan.
template <class U>
bool any_exp_ones(const U* x, int64_t n, U mask) {
  U bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<U>((x[i] & mask) == mask);
  return bad != 0;
}

template <class U>
int64_t first_bad(const U* x, int64_t n, U mask) {
  constexpr int64_t kBlock = 4096;
  std::atomic<int64_t> first{n};
  // Memory-bound: one thread scans ~10 GB/s, so only the largest tensors are split.
  detail::parallel_ranges(n, int64_t{1} << 23, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end && b < first.load(std::memory_order_relaxed); b += kBlock) {
      const int64_t len = std::min(kBlock, end - b);
      if (!any_exp_ones(x + b, len, mask)) continue;
      for (int64_t i = b; i < b + len; ++i)
        if ((x[i] & mask) == mask) {
          int64_t cur = first.load();
          while (i < cur && !first.compare_exchange_weak(cur, i)) {
          }
          return;
        }
    }
  });
  const int64_t r = first.load();
  return r < n ? r : -1;
}

}  // namespace

int64_t first_nonfinite_f32(const float* x, int64_t n) {
  static_assert(sizeof(float) == sizeof(uint32_t));
  if (reinterpret_cast<uintptr_t>(x) % alignof(uint32_t) != 0) {  // an unaligned tensor in a safetensors file
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, reinterpret_cast<const char*>(x) + i * 4, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
  }
  return first_bad(reinterpret_cast<const uint32_t*>(x), n, uint32_t{0x7f800000u});
}
int64_t first_nonfinite_bf16(const uint16_t* x, int64_t n) { return first_bad(x, n, uint16_t{0x7f80u}); }
int64_t first_nonfinite_f16(const uint16_t* x, int64_t n) { return first_bad(x, n, uint16_t{0x7c00u}); }

}  // namespace zotune::kernels
