// Storage casts bf16/f16 <-> f32, round to nearest even, NaN kept NaN (quiet).
//
// The integer formulations below are exact on every target. On AVX2 and AVX-512
// the f16 casts use F16C instead (through Highway's PromoteTo/DemoteTo), which
// rounds the same way; test_kernels checks both against the reference.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/casts.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class DF>
HWY_INLINE hn::Vec<DF> Bf16ToF32Vec(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
  const hn::RebindToUnsigned<DF> du;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
}

template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToBf16Vec(DF df, hn::Vec<DF> v) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> du16;
  const auto u = hn::BitCast(du, v);
  // Round to nearest even: add 0x7FFF plus the lowest kept bit. A carry out
  // of the mantissa correctly bumps the exponent, up to Inf.
  const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1));
  const auto rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7FFF), lsb)));
  const auto quiet_nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40));
  const auto magnitude = hn::BitCast(di, hn::And(u, hn::Set(du, 0x7FFFFFFF)));
  const auto is_nan = hn::Gt(magnitude, hn::Set(di, 0x7F800000));
  const auto bits = hn::IfThenElse(is_nan, hn::BitCast(di, quiet_nan), hn::BitCast(di, rounded));
  return hn::DemoteTo(du16, bits);
}

template <class DF>
HWY_INLINE hn::Vec<DF> F16ToF32Vec(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h16) {
#if HWY_TARGET <= HWY_AVX2
  const hn::Rebind<hwy::float16_t, DF> df16;
  return hn::PromoteTo(df, hn::BitCast(df16, h16));
#else
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const auto h = hn::PromoteTo(du, h16);
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000)));
  const auto em = hn::And(h, hn::Set(du, 0x7FFF));
  // Rebias the exponent (127 - 15) << 23 and move the mantissa into place.
  const auto normal = hn::Add(hn::ShiftLeft<13>(em), hn::Set(du, 0x38000000));
  // Subnormal: give it the implicit bit of 2^-14, then subtract 2^-14 in
  // float arithmetic, which is exact and normalizes the result.
  const auto sub = hn::Sub(hn::BitCast(df, hn::Add(normal, hn::Set(du, 0x00800000))),
                           hn::BitCast(df, hn::Set(du, 0x38800000)));
  const auto mant = hn::And(h, hn::Set(du, 0x3FF));
  const auto special = hn::Or(hn::Set(du, 0x7F800000), hn::ShiftLeft<13>(mant));
  const auto quiet = hn::IfThenElseZero(hn::RebindMask(du, hn::Gt(hn::BitCast(di, mant), hn::Zero(di))),
                                        hn::Set(du, 0x00400000));
  const auto emi = hn::BitCast(di, em);
  auto bits = hn::IfThenElse(hn::RebindMask(du, hn::Lt(emi, hn::Set(di, 0x400))), hn::BitCast(du, sub), normal);
  bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(emi, hn::Set(di, 0x7BFF))), hn::Or(special, quiet), bits);
  return hn::BitCast(df, hn::Or(bits, sign));
#endif
}

template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToF16Vec(DF df, hn::Vec<DF> v) {
#if HWY_TARGET <= HWY_AVX2
  const hn::Rebind<hwy::float16_t, DF> df16;
  const hn::Rebind<uint16_t, DF> du16;
  return hn::BitCast(du16, hn::DemoteTo(df16, v));
#else
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> du16;
  const auto u = hn::BitCast(du, v);
  const auto sign = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 0x8000));
  const auto a = hn::And(u, hn::Set(du, 0x7FFFFFFF));
  const auto ai = hn::BitCast(di, a);
  // Normal half: rebias (subtract 112 << 23), round to nearest even at bit 13.
  const auto lsb = hn::And(hn::ShiftRight<13>(a), hn::Set(du, 1));
  const auto normal = hn::ShiftRight<13>(hn::Add(a, hn::Add(hn::Set(du, 0xC8000FFFu), lsb)));
  // Subnormal half: adding 0.5f leaves |x| rounded to a multiple of 2^-24
  // (0.5's ulp) in the low mantissa bits, rounded by the FPU to nearest even.
  const auto sub = hn::Sub(hn::BitCast(du, hn::Add(hn::BitCast(df, a), hn::Set(df, 0.5f))),
                           hn::Set(du, 0x3F000000));
  const auto nan = hn::Or(hn::Set(du, 0x7E00), hn::And(hn::ShiftRight<13>(a), hn::Set(du, 0x3FF)));
  auto bits = hn::IfThenElse(hn::RebindMask(du, hn::Lt(ai, hn::Set(di, 0x38800000))), sub, normal);
  // 65520 and above round to Inf.
  bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(ai, hn::Set(di, 0x477FEFFF))), hn::Set(du, 0x7C00), bits);
  bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(ai, hn::Set(di, 0x7F800000))), nan, bits);
  return hn::DemoteTo(du16, hn::BitCast(di, hn::Or(bits, sign)));
#endif
}

// Whole vectors, then single lanes.
template <class ToF32>
HWY_INLINE void WidenLoop(const uint16_t* in, float* out, int64_t n, const ToF32& cvt) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(cvt(df, hn::LoadU(du16, in + i)), df, out + i);
  const hn::CappedTag<float, 1> df1;
  const hn::Rebind<uint16_t, decltype(df1)> du1;
  for (; i < n; ++i) hn::StoreU(cvt(df1, hn::LoadU(du1, in + i)), df1, out + i);
}

template <class FromF32>
HWY_INLINE void NarrowLoop(const float* in, uint16_t* out, int64_t n, const FromF32& cvt) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(cvt(df, hn::LoadU(df, in + i)), du16, out + i);
  const hn::CappedTag<float, 1> df1;
  const hn::Rebind<uint16_t, decltype(df1)> du1;
  for (; i < n; ++i) hn::StoreU(cvt(df1, hn::LoadU(df1, in + i)), du1, out + i);
}

void Bf16ToF32(const uint16_t* in, float* out, int64_t n) {
  WidenLoop(in, out, n, [](auto d, auto h) { return Bf16ToF32Vec(d, h); });
}
void F16ToF32(const uint16_t* in, float* out, int64_t n) {
  WidenLoop(in, out, n, [](auto d, auto h) { return F16ToF32Vec(d, h); });
}
void F32ToBf16(const float* in, uint16_t* out, int64_t n) {
  NarrowLoop(in, out, n, [](auto d, auto v) { return F32ToBf16Vec(d, v); });
}
void F32ToF16(const float* in, uint16_t* out, int64_t n) {
  NarrowLoop(in, out, n, [](auto d, auto v) { return F32ToF16Vec(d, v); });
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

namespace zotune::kernels {

HWY_EXPORT(Bf16ToF32);
HWY_EXPORT(F16ToF32);
HWY_EXPORT(F32ToBf16);
HWY_EXPORT(F32ToF16);

namespace {
constexpr int64_t kCastGrain = int64_t{1} << 16;
}

void bf16_to_f32(const uint16_t* in, float* out, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kCastGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(Bf16ToF32)(in + b, out + b, e - b);
  });
}

void f16_to_f32(const uint16_t* in, float* out, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kCastGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(F16ToF32)(in + b, out + b, e - b);
  });
}

void f32_to_bf16(const float* in, uint16_t* out, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kCastGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(F32ToBf16)(in + b, out + b, e - b);
  });
}

void f32_to_f16(const float* in, uint16_t* out, int64_t n) {
  detail::ensure_isa();
  detail::parallel_ranges(n, kCastGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(F32ToF16)(in + b, out + b, e - b);
  });
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
