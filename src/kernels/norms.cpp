// Row kernels: layer_norm, rms_norm, softmax_rows, logsumexp_rows.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/norms.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <cmath>
#include <limits>

#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Sum of f(x[i]) over a row; f maps a vector to a vector. Four accumulators
// hide the add latency; the < N leftover lanes go through a 1-lane tag.
template <class F>
HWY_INLINE float RowSum(const float* x, int64_t n, const F& f) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, f(d, hn::LoadU(d, x + i)));
    a1 = hn::Add(a1, f(d, hn::LoadU(d, x + i + N)));
    a2 = hn::Add(a2, f(d, hn::LoadU(d, x + i + 2 * N)));
    a3 = hn::Add(a3, f(d, hn::LoadU(d, x + i + 3 * N)));
  }
  for (; i + N <= n; i += N) a0 = hn::Add(a0, f(d, hn::LoadU(d, x + i)));
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) sum += hn::GetLane(f(d1, hn::LoadU(d1, x + i)));
  return sum;
}

HWY_INLINE float RowMax(const float* x, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto m0 = hn::Set(d, -std::numeric_limits<float>::infinity()), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    m0 = hn::Max(m0, hn::LoadU(d, x + i));
    m1 = hn::Max(m1, hn::LoadU(d, x + i + N));
  }
  for (; i + N <= n; i += N) m0 = hn::Max(m0, hn::LoadU(d, x + i));
  float m = hn::GetLane(hn::MaxOfLanes(d, hn::Max(m0, m1)));
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// y[i] = f(x[i]) for a row; y may alias x.
template <class F>
HWY_INLINE void RowMap(const float* x, float* y, int64_t n, const F& f) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(d, hn::LoadU(d, x + i), i), d, y + i);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(f(d1, hn::LoadU(d1, x + i), i), d1, y + i);
}

// Sums of (x - shift) and (x - shift)^2 over a row.
HWY_INLINE void ShiftedMoments(const float* x, int64_t n, float shift, float& s1, float& s2) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto sh = hn::Set(d, shift);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), q0 = hn::Zero(d), q1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto c0 = hn::Sub(hn::LoadU(d, x + i), sh);
    const auto c1 = hn::Sub(hn::LoadU(d, x + i + N), sh);
    a0 = hn::Add(a0, c0);
    a1 = hn::Add(a1, c1);
    q0 = hn::MulAdd(c0, c0, q0);
    q1 = hn::MulAdd(c1, c1, q1);
  }
  for (; i + N <= n; i += N) {
    const auto c0 = hn::Sub(hn::LoadU(d, x + i), sh);
    a0 = hn::Add(a0, c0);
    q0 = hn::MulAdd(c0, c0, q0);
  }
  s1 = hn::GetLane(hn::SumOfLanes(d, hn::Add(a0, a1)));
  s2 = hn::GetLane(hn::SumOfLanes(d, hn::Add(q0, q1)));
  for (; i < n; ++i) {
    const float c = x[i] - shift;
    s1 += c;
    s2 += c * c;
  }
}

void LayerNormRows(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                   int64_t cols, float eps) {
  const float inv_n = 1.0f / static_cast<float>(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    // A rough mean first, then moments about it: the deviations are small
    // numbers, so neither the mean correction nor the variance cancels even
    // when the row has a large common offset, and x - rough is exact for
    // values near the mean.
    const float rough = RowSum(xr, cols, [](auto, auto v) { return v; }) * inv_n;
    float s1, s2;
    ShiftedMoments(xr, cols, rough, s1, s2);
    const float corr = s1 * inv_n;
    const float var = std::max(s2 * inv_n - corr * corr, 0.0f);
    const float inv = 1.0f / std::sqrt(var + eps);
    auto normalized = [=](auto d, auto v) {
      return hn::Mul(hn::Sub(hn::Sub(v, hn::Set(d, rough)), hn::Set(d, corr)), hn::Set(d, inv));
    };
    if (beta != nullptr) {
      RowMap(xr, yr, cols, [=](auto d, auto v, int64_t i) {
        return hn::MulAdd(normalized(d, v), hn::LoadU(d, gamma + i), hn::LoadU(d, beta + i));
      });
    } else {
      RowMap(xr, yr, cols, [=](auto d, auto v, int64_t i) {
        return hn::Mul(normalized(d, v), hn::LoadU(d, gamma + i));
      });
    }
  }
}

void RmsNormRows(const float* x, const float* w, float* y, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float ms = RowSum(xr, cols, [](auto, auto v) { return hn::Mul(v, v); }) /
                     static_cast<float>(cols);
    const float inv = 1.0f / std::sqrt(ms + eps);
    // HF order: w * (x * inv).
    RowMap(xr, yr, cols, [=](auto d, auto v, int64_t i) {
      return hn::Mul(hn::LoadU(d, w + i), hn::Mul(v, hn::Set(d, inv)));
    });
  }
}

void SoftmaxRows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    const float m = RowMax(xr, cols);
    // exp is computed once: stored, then summed from the stored values.
    RowMap(xr, xr, cols, [m](auto d, auto v, int64_t) { return hn::Exp(d, hn::Sub(v, hn::Set(d, m))); });
    const float inv = 1.0f / RowSum(xr, cols, [](auto, auto v) { return v; });
    RowMap(xr, xr, cols, [inv](auto d, auto v, int64_t) { return hn::Mul(v, hn::Set(d, inv)); });
  }
}

// One pass over memory: each chunk is read once for its max and then again
// from L1 for the sum of exps; the running sum is rescaled when the max grows.
void LogSumExpRows(const float* logits, int64_t rows, int64_t V, float* lse) {
  constexpr int64_t kChunk = 2048;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = logits + r * V;
    float m = -std::numeric_limits<float>::infinity();
    double sum = 0.0;
    for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
      const int64_t n = std::min(kChunk, V - c0);
      const float cm = RowMax(xr + c0, n);
      if (cm > m) {
        sum *= std::exp(static_cast<double>(m) - cm);
        m = cm;
      }
      sum += RowSum(xr + c0, n, [m](auto d, auto v) { return hn::Exp(d, hn::Sub(v, hn::Set(d, m))); });
    }
    lse[r] = static_cast<float>(m + std::log(sum));
  }
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

namespace zotune::kernels {

HWY_EXPORT(LayerNormRows);
HWY_EXPORT(RmsNormRows);
HWY_EXPORT(SoftmaxRows);
HWY_EXPORT(LogSumExpRows);

namespace {
// Rows per thread so that a thread gets at least ~16k elements.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(cols, 1)); }
}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t cols, float eps) {
  detail::ensure_isa();
  if (cols <= 0) return;
  detail::parallel_ranges(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(LayerNormRows)(x + b * cols, gamma, beta, y + b * cols, e - b, cols, eps);
  }, 1);
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t cols, float eps) {
  detail::ensure_isa();
  if (cols <= 0) return;
  detail::parallel_ranges(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(RmsNormRows)(x + b * cols, w, y + b * cols, e - b, cols, eps);
  }, 1);
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  detail::ensure_isa();
  if (cols <= 0) return;
  detail::parallel_ranges(rows, row_grain(cols) / 4 + 1, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(SoftmaxRows)(x + b * cols, e - b, cols);
  }, 1);
}

void logsumexp_rows(const float* logits, int64_t rows, int64_t V, float* lse) {
  detail::ensure_isa();
  if (V <= 0) {
    for (int64_t r = 0; r < rows; ++r) lse[r] = -std::numeric_limits<float>::infinity();
    return;
  }
  detail::parallel_ranges(rows, row_grain(V) / 4 + 1, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(LogSumExpRows)(logits + b * V, e - b, V, lse + b);
  }, 1);
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
