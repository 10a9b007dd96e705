// Vector math shared by the kernel files, compiled once per Highway target
// (hence the toggle guard instead of #pragma once).
//
// Accuracy (measured in test_kernels against the double references):
//   exp: Highway's Exp, 1 ulp.
//   silu / gelu_tanh: x * sigmoid(.) with sigmoid(a) = 1 / (1 + exp(-a)); no
//     1 + tanh(.) cancellation, so the negative tail keeps its relative accuracy
//     (gelu_tanh also carries its exp argument in extra precision, see there).
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

// a * b = p + e exactly (an error-free product). Without FMA (SSE4, scalar),
// Dekker's split of each factor into two 12-bit halves gives e.
template <class D, class V>
HWY_INLINE void TwoProd(D d, V a, V b, V& p, V& e) {
  p = hn::Mul(a, b);
#if HWY_NATIVE_FMA
  e = hn::MulSub(a, b, p);
#else
  const V k = hn::Set(d, 4097.0f);
  const V ca = hn::Mul(a, k), cb = hn::Mul(b, k);
  const V ah = hn::Sub(ca, hn::Sub(ca, a)), bh = hn::Sub(cb, hn::Sub(cb, b));
  const V al = hn::Sub(a, ah), bl = hn::Sub(b, bh);
  e = hn::Add(hn::Add(hn::Add(hn::Sub(hn::Mul(ah, bh), p), hn::Mul(ah, bl)), hn::Mul(al, bh)),
              hn::Mul(al, bl));
#endif
}

// a + b = s + e exactly, for any magnitudes (Knuth's TwoSum).
template <class V>
HWY_INLINE void TwoSum(V a, V b, V& s, V& e) {
  s = hn::Add(a, b);
  const V bb = hn::Sub(s, a);
  e = hn::Add(hn::Sub(a, hn::Sub(s, bb)), hn::Sub(b, bb));
}

// gelu_new: 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
// exp(-2u) multiplies the relative error of 2u by |2u| (up to ~90), so 2u is
// carried as a float pair hi + lo (constants included) and
// exp(-hi - lo) = exp(-hi) (1 - lo).
template <class D, class V>
HWY_INLINE V GeluTanh(D d, V x) {
  const V k_hi = hn::Set(d, 1.59576917f), k_lo = hn::Set(d, -4.53406805e-08f);   // 2 sqrt(2/pi)
  const V c_hi = hn::Set(d, 0.0447149985f), c_lo = hn::Set(d, 1.54614443e-09f);  // 0.044715
  // Beyond |x| = 16 the result is x or 0 in float; the cap keeps x^3 finite.
  const V xc = hn::Max(hn::Min(x, hn::Set(d, 16.0f)), hn::Set(d, -16.0f));
  const V one = hn::Set(d, 1.0f);
  V s, s_e, t, t_e, w, w_e, v, v_e, z, z_e;
  TwoProd(d, xc, xc, s, s_e);  // x^2
  TwoProd(d, c_hi, s, t, t_e);  // c x^2
  t_e = hn::MulAdd(c_lo, s, hn::MulAdd(c_hi, s_e, t_e));
  TwoSum(one, t, w, w_e);  // 1 + c x^2
  w_e = hn::Add(w_e, t_e);
  TwoProd(d, xc, w, v, v_e);  // x (1 + c x^2)
  v_e = hn::MulAdd(xc, w_e, v_e);
  TwoProd(d, k_hi, v, z, z_e);  // 2u
  z_e = hn::MulAdd(k_lo, v, hn::MulAdd(k_hi, v_e, z_e));
  const V e = hn::Mul(ExpSafe(d, hn::Neg(z)), hn::Sub(one, z_e));
  return hn::Div(x, hn::Add(one, e));
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
  TwoProd(d, xa, xa, hi, lo);
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
