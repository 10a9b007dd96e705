// Vector math shared by the kernel files, compiled once per Highway target
// (hence the toggle guard instead of #pragma once).
//
// Accuracy (measured in test_kernels against the double references):
//   exp: Highway's Exp, 1 ulp.
//   silu / gelu_tanh: x * sigmoid(.) with sigmoid(a) = 1 / (1 + exp(-a)); no
//     1 + tanh(.) cancellation, so the negative tail keeps its relative accuracy.
//   gelu_erf: Phi(x) from erfc(t) = exp(-t^2) * erfcx(t), t = |x|/sqrt2, with
//     erfcx fitted (weighted least squares, relative error) as u * P(w),
//     u = 1/(1 + t/2), w = (u - 7/12) * 12/5 in [-1, 1] for t in [0, 10].

#if defined(ZOTUNE_KERNELS_VEC_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ZOTUNE_KERNELS_VEC_MATH_INL_H_
#undef ZOTUNE_KERNELS_VEC_MATH_INL_H_
#else
#define ZOTUNE_KERNELS_VEC_MATH_INL_H_
#endif

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Highway's Exp is only specified up to +104; above that it may return
// garbage, while exp overflows to Inf from 88.7 on anyway.
template <class D, class V>
HWY_INLINE V ExpSafe(D d, V x) {
  return hn::Exp(d, hn::Min(x, hn::Set(d, 100.0f)));
}

// x * sigmoid(a) = x / (1 + exp(-a)); exp(-a) = Inf gives the correct 0.
template <class D, class V>
HWY_INLINE V TimesSigmoid(D d, V x, V a) {
  return hn::Div(x, hn::Add(hn::Set(d, 1.0f), ExpSafe(d, hn::Neg(a))));
}

// gelu_new: 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
template <class D, class V>
HWY_INLINE V GeluTanh(D d, V x) {
  const V c1 = hn::Set(d, 1.5957691216057308f);               // 2 sqrt(2/pi)
  const V c3 = hn::Set(d, 1.5957691216057308f * 0.044715f);   // 2 sqrt(2/pi) 0.044715
  const V two_u = hn::Mul(x, hn::MulAdd(c3, hn::Mul(x, x), c1));
  return TimesSigmoid(d, x, two_u);
}

// x^2 = hi + lo exactly. Without FMA (SSE4, EMU128), Dekker's split of x into
// two 12-bit halves gives the low part.
template <class D, class V>
HWY_INLINE void SquareExact(D d, V x, V& hi, V& lo) {
  hi = hn::Mul(x, x);
#if HWY_NATIVE_FMA
  lo = hn::MulSub(x, x, hi);
#else
  const V c = hn::Mul(x, hn::Set(d, 4097.0f));
  const V xh = hn::Sub(c, hn::Sub(c, x));
  const V xl = hn::Sub(x, xh);
  lo = hn::Add(hn::Add(hn::Sub(hn::Mul(xh, xh), hi), hn::Mul(hn::Add(xh, xh), xl)), hn::Mul(xl, xl));
#endif
}

// erfc(|x| / sqrt2) for the normal CDF Phi.
template <class D, class V>
HWY_INLINE V ErfcOfAbsOverSqrt2(D d, V x) {
  const V t = hn::Min(hn::Mul(hn::Abs(x), hn::Set(d, 0.70710678118654752f)), hn::Set(d, 10.0f));
  const V u = hn::Div(hn::Set(d, 1.0f), hn::MulAdd(t, hn::Set(d, 0.5f), hn::Set(d, 1.0f)));
  const V w = hn::Mul(hn::Sub(u, hn::Set(d, 0.583333313f)), hn::Set(d, 2.4f));
  V p = hn::Set(d, -1.99279134e-06f);
  p = hn::MulAdd(p, w, hn::Set(d, 5.08342009e-06f));
  p = hn::MulAdd(p, w, hn::Set(d, 1.20738232e-05f));
  p = hn::MulAdd(p, w, hn::Set(d, -6.56888369e-05f));
  p = hn::MulAdd(p, w, hn::Set(d, -6.05460684e-07f));
  p = hn::MulAdd(p, w, hn::Set(d, 0.0005959064f));
  p = hn::MulAdd(p, w, hn::Set(d, -0.000617402664f));
  p = hn::MulAdd(p, w, hn::Set(d, -0.00615407666f));
  p = hn::MulAdd(p, w, hn::Set(d, 0.00596242957f));
  p = hn::MulAdd(p, w, hn::Set(d, 0.102029778f));
  p = hn::MulAdd(p, w, hn::Set(d, 0.326222509f));
  p = hn::MulAdd(p, w, hn::Set(d, 0.572011948f));
  const V erfcx = hn::Mul(u, p);
  // exp(-x^2/2) with x^2 split exactly into hi + lo (FMA), because the
  // rounding error of x^2 would otherwise be multiplied by x^2/2.
  // |x| is capped where exp(-x^2/2) has long underflowed, so that x^2 stays finite.
  const V xa = hn::Min(hn::Abs(x), hn::Set(d, 15.0f));
  V hi, lo;
  SquareExact(d, xa, hi, lo);
  const V half = hn::Set(d, 0.5f);
  const V e = hn::Mul(hn::Exp(d, hn::Mul(hi, hn::Neg(half))), hn::NegMulAdd(lo, half, hn::Set(d, 1.0f)));
  return hn::Mul(erfcx, e);
}

// Exact GELU: x Phi(x); Phi(x) = erfc(-x/sqrt2)/2, taken from the tail side
// that does not cancel.
template <class D, class V>
HWY_INLINE V GeluErf(D d, V x) {
  const V half_erfc = hn::Mul(ErfcOfAbsOverSqrt2(d, x), hn::Set(d, 0.5f));
  const V phi = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), half_erfc, hn::Sub(hn::Set(d, 1.0f), half_erfc));
  return hn::Mul(x, phi);
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // ZOTUNE_KERNELS_VEC_MATH_INL_H_
