// Rotary position embedding (HF rotate_half convention), in place.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/rope.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rotates every head of one row with the row's cos/sin tables (half entries).
void RotateRow(float* row, int64_t heads, int64_t head_dim, const float* cos, const float* sin) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t half = head_dim / 2;
  const hn::CappedTag<float, 1> d1;
  for (int64_t h = 0; h < heads; ++h) {
    float* lo = row + h * head_dim;
    float* hi = lo + half;
    auto rotate = [&](auto dd, int64_t i) {
      const auto a = hn::LoadU(dd, lo + i), b = hn::LoadU(dd, hi + i);
      const auto c = hn::LoadU(dd, cos + i), s = hn::LoadU(dd, sin + i);
      hn::StoreU(hn::NegMulAdd(b, s, hn::Mul(a, c)), dd, lo + i);
      hn::StoreU(hn::MulAdd(a, s, hn::Mul(b, c)), dd, hi + i);
    };
    int64_t i = 0;
    for (; i + N <= half; i += N) rotate(d, i);
    for (; i < half; ++i) rotate(d1, i);
  }
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>
#include <vector>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

namespace zotune::kernels {

HWY_EXPORT(RotateRow);

void rope_inplace(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_dim,
                  const int64_t* positions, const float* inv_freq) {
  detail::ensure_isa();
  const int64_t half = head_dim / 2;
  if (half <= 0 || heads <= 0) return;
  // cos/sin once per row (shared by its heads) with libm's correctly rounded
  // float functions of the fp32 angle, as torch computes them.
  // A row costs ~head_dim libm calls (~1 us at head_dim 64): 8 rows per thread
  // outweigh the fork.
  detail::parallel_ranges(rows, 8, [&](int64_t b, int64_t e) {
    std::vector<float> table(static_cast<size_t>(2 * half));
    float* cos = table.data();
    float* sin = table.data() + half;
    for (int64_t r = b; r < e; ++r) {
      const float pos = static_cast<float>(positions[r]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        cos[i] = std::cos(angle);
        sin[i] = std::sin(angle);
      }
      HWY_DYNAMIC_DISPATCH(RotateRow)(x + r * row_stride, heads, head_dim, cos, sin);
    }
  }, 1);
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
