// OpenMP splitting shared by the kernel entry points. The SIMD bodies stay
// free of OpenMP: each thread calls the dispatched body on its own range.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace zotune::kernels::detail {

// Runs body(begin, end) over [0, n) split into contiguous ranges, one per
// thread. `grain` is the smallest range worth a thread: below 2*grain (or inside
// an enclosing parallel region) everything runs on the calling thread, because
// waking the team costs more than it saves. Ranges start at multiples of
// `align` so that SIMD loops see aligned-size chunks.
template <class Body>
void parallel_ranges(int64_t n, int64_t grain, Body&& body, int64_t align = 16) {
  if (n <= 0) return;
  const int64_t max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t threads = std::min<int64_t>(max_threads, n / std::max<int64_t>(grain, 1));
  if (threads <= 1) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const int64_t t = omp_get_thread_num();
    const int64_t nt = omp_get_num_threads();
    const int64_t per = (n + nt - 1) / nt;
    const int64_t step = (per + align - 1) / align * align;
    const int64_t b = std::min(n, t * step);
    const int64_t e = std::min(n, b + step);
    if (b < e) body(b, e);
  }
}

}  // namespace zotune::kernels::detail
