// Elementwise kernels: add, bias, activations, scale.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/elementwise.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Applies op(d, v) to x[0, n) in place: whole vectors, then single lanes.
template <class Op>
HWY_INLINE void MapInPlace(float* HWY_RESTRICT x, int64_t n, const Op& op) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(op(d, hn::LoadU(d, x + i)), d, x + i);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(op(d1, hn::LoadU(d1, x + i)), d1, x + i);
}

// out[i] = op(d, a[i], b[i]); out may alias a or b (same index only).
template <class Op>
HWY_INLINE void Map2(const float* a, const float* b, float* out, int64_t n, const Op& op) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(op(d, hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(op(d1, hn::LoadU(d1, a + i), hn::LoadU(d1, b + i)), d1, out + i);
}

void AddInplace(float* y, const float* x, int64_t n) {
  Map2(y, x, y, n, [](auto d, auto a, auto b) { return hn::Add(a, b); });
}

void AddBiasRows(float* y, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) AddInplace(y + r * cols, bias, cols);
}

void Relu(float* x, int64_t n) {
  MapInPlace(x, n, [](auto d, auto v) { return hn::Max(v, hn::Zero(d)); });
}

void GeluTanhInplace(float* x, int64_t n) {
  MapInPlace(x, n, [](auto d, auto v) { return GeluTanh(d, v); });
}

void GeluErfInplace(float* x, int64_t n) {
  MapInPlace(x, n, [](auto d, auto v) { return GeluErf(d, v); });
}

void SiluMul(const float* gate, const float* up, float* out, int64_t n) {
  Map2(gate, up, out, n, [](auto d, auto g, auto u) { return hn::Mul(TimesSigmoid(d, g, g), u); });
}

void Scale(float* x, float s, int64_t n) {
  MapInPlace(x, n, [s](auto d, auto v) { return hn::Mul(v, hn::Set(d, s)); });
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

namespace zotune::kernels {

HWY_EXPORT(AddInplace);
HWY_EXPORT(AddBiasRows);
HWY_EXPORT(Relu);
HWY_EXPORT(GeluTanhInplace);
HWY_EXPORT(GeluErfInplace);
HWY_EXPORT(SiluMul);
HWY_EXPORT(Scale);

namespace {
// Elements per thread below which a second thread does not pay off: plain
// streaming ops are memory-bound, the ones with exp are compute-bound.
constexpr int64_t kStreamGrain = int64_t{1} << 16;
constexpr int64_t kExpGrain = int64_t{1} << 12;
}  // namespace

void add_inplace(float* y, const float* x, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kStreamGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(AddInplace)(y + b, x + b, e - b);
  });
}

void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols) {
  detail::ensure_isa();
  if (cols <= 0) return;
  const int64_t grain = std::max<int64_t>(1, kStreamGrain / cols);
  detail::parallel_ranges(rows, grain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(AddBiasRows)(y + b * cols, bias, e - b, cols);
  }, 1);
}

void relu_inplace(float* x, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kStreamGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(Relu)(x + b, e - b);
  });
}

void gelu_tanh_inplace(float* x, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kExpGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(GeluTanhInplace)(x + b, e - b);
  });
}

void gelu_erf_inplace(float* x, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kExpGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(GeluErfInplace)(x + b, e - b);
  });
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kExpGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(SiluMul)(gate + b, up + b, out + b, e - b);
  });
}

void scale_inplace(float* x, float s, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kStreamGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(Scale)(x + b, s, e - b);
  });
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
