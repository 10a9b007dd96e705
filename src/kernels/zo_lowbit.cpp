// The fused ZO pass over 16-bit stored parameters (zo_lowbit.h). Like
// zo_kernels.cpp it works a 64-element group at a time, and a group cut by the
// range's ends is generated whole into scratch, so z and the rounding noise
// never depend on where a range or a thread starts. The Philox and Box-Muller
// code is that of zo_rng-inl.h; the rounding noise takes the raw words of the
// Rounding stream so the comparison u < frac can be done exactly in integers.
#include "kernels/hwy_targets.h"

#include <algorithm>
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/zo_lowbit.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/zo_lowbit.h"
#include "kernels/zo_rng-inl.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kLowBitBatch = 2;
#else
constexpr int64_t kLowBitBatch = 1;
#endif

// bf16/f16 bits -> fp32, exact (f16 subnormals are small integers times 2^-24).
template <LowBitFormat kFmt, class DF>
HWY_INLINE hn::Vec<DF> Upcast(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h16) {
  const hn::RebindToUnsigned<DF> du;
  const auto h = hn::PromoteTo(du, h16);
  if constexpr (kFmt == LowBitFormat::BF16) {
    return hn::BitCast(df, hn::ShiftLeft<16>(h));
  } else {
    const hn::RebindToSigned<DF> di;
    const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
    const auto em = hn::And(h, hn::Set(du, 0x7FFFu));
    const auto emi = hn::BitCast(di, em);
    const auto normal = hn::Add(hn::ShiftLeft<13>(em), hn::Set(du, 0x38000000u));  // rebias 15 -> 127
    const auto special = hn::Or(hn::ShiftLeft<13>(em), hn::Set(du, 0x7F800000u));  // Inf / NaN payload
    const auto sub = hn::BitCast(du, hn::Mul(hn::ConvertTo(df, emi), hn::Set(df, 0x1p-24f)));
    auto bits = hn::IfThenElse(hn::RebindMask(du, hn::Lt(emi, hn::Set(di, 0x400))), sub, normal);
    bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(emi, hn::Set(di, 0x7BFF))), special, bits);
    return hn::BitCast(df, hn::Or(bits, sign));
  }
}

// fp32 -> bf16/f16 bits, rounding away from zero iff u < frac (zo_lowbit.h);
// r holds the element's raw Rounding-stream word, u = (r >> 8) / 2^24.
template <LowBitFormat kFmt, class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> RoundStochastic(DF df, hn::Vec<DF> w,
                                                               hn::Vec<hn::RebindToUnsigned<DF>> r) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> du16;
  const auto bits = hn::BitCast(du, w);
  const auto one = hn::Set(du, 1u);
  const auto a = hn::And(bits, hn::Set(du, 0x7FFFFFFFu));
  const auto ai = hn::BitCast(di, a);
  const auto is_nan = hn::RebindMask(du, hn::Gt(ai, hn::Set(di, 0x7F800000)));
  hn::Vec<decltype(du)> out;
  if constexpr (kFmt == LowBitFormat::BF16) {
    // frac = low16 / 2^16: u < frac  <=>  (r >> 16) < low16. Sign-magnitude bits,
    // so +1 moves away from zero and carries into the exponent (max -> Inf).
    const auto low = hn::And(bits, hn::Set(du, 0xFFFFu));
    const auto up = hn::RebindMask(du, hn::Lt(hn::BitCast(di, hn::ShiftRight<16>(r)), hn::BitCast(di, low)));
    const auto rounded = hn::Add(hn::ShiftRight<16>(bits), hn::IfThenElseZero(up, one));
    const auto quiet_nan = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 0x40u));
    out = hn::IfThenElse(is_nan, quiet_nan, rounded);
  } else {
    const auto sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 0x8000u));
    // Normal f16 (|w| >= 2^-14): 13 bits dropped, frac = low13 / 2^13, so
    // u < frac <=> (r >> 19) < low13.
    const auto low13 = hn::And(a, hn::Set(du, 0x1FFFu));
    const auto up_n = hn::RebindMask(du, hn::Lt(hn::BitCast(di, hn::ShiftRight<19>(r)), hn::BitCast(di, low13)));
    const auto normal = hn::Add(hn::ShiftRight<13>(hn::Sub(a, hn::Set(du, 0x38000000u))), hn::IfThenElseZero(up_n, one));
    // Subnormal f16: in units of 2^-24, q = |w| 2^24 < 1024 is exact, as are
    // floor(q) and frac = q - floor(q). Clamping keeps other lanes finite.
    const auto q = hn::Mul(hn::BitCast(df, hn::Min(ai, hn::Set(di, 0x38800000))), hn::Set(df, 0x1p24f));
    const auto t = hn::Floor(q);
    const auto u = hn::Mul(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<8>(r))), hn::Set(df, 0x1p-24f));
    const auto up_s = hn::RebindMask(du, hn::Lt(u, hn::Sub(q, t)));
    const auto sub = hn::Add(hn::BitCast(du, hn::ConvertTo(di, t)), hn::IfThenElseZero(up_s, one));
    auto m = hn::IfThenElse(hn::RebindMask(du, hn::Lt(ai, hn::Set(di, 0x38800000))), sub, normal);
    m = hn::IfThenElse(hn::RebindMask(du, hn::Gt(ai, hn::Set(di, 0x477FFFFF))), hn::Set(du, 0x7C00u), m);
    const auto quiet_nan = hn::Or(hn::Set(du, 0x7E00u), hn::And(hn::ShiftRight<13>(a), hn::Set(du, 0x3FFu)));
    out = hn::Or(hn::IfThenElse(is_nan, quiet_nan, m), sign);
  }
  return hn::DemoteTo(du16, hn::BitCast(di, out));
}

// Raw Rounding-stream words of kG groups, in element order (as UniformGroups).
template <size_t kG>
HWY_INLINE void RoundingWords(const ZoRoundKeys& keys, uint64_t group, uint32_t tensor_id,
                              uint32_t* HWY_RESTRICT out) {
  const ZoD32 du;
  constexpr size_t kN = hn::MaxLanes(du);
  hn::Vec<ZoD32> w[4][kG * kZoParts];
  PhiloxGroups<kG>(keys, group, tensor_id, static_cast<uint32_t>(ZoStream::Rounding), w);
  ZOTUNE_ZO_UNROLL(32)
  for (size_t q = 0; q < kG * kZoParts; ++q) {
    uint32_t* o = out + (q / kZoParts) * kZoGroup + (q % kZoParts) * kN;
    ZOTUNE_ZO_UNROLL(4)
    for (int r = 0; r < 4; ++r) hn::StoreU(w[r][q], du, o + 16 * r);
  }
}

template <int64_t kG>
using LowBitGroups = std::integral_constant<int64_t, kG>;

// Walks [begin, begin + n): draw(LowBitGroups<kG>, group) fills the scratch for
// kG whole groups, then lanes(tag, j, zj) handles elements [j, j + Lanes(tag))
// relative to begin, whose scratch index is j - zj.
template <class Draw, class Lanes>
HWY_INLINE void WalkGroups(int64_t begin, int64_t n, const Draw& draw, const Lanes& lanes) {
  const hn::CappedTag<float, 16> d;
  const hn::CappedTag<float, 1> d1;
  constexpr int64_t kN = static_cast<int64_t>(hn::MaxLanes(d));
  const int64_t end = begin + n;
  int64_t i = begin;
  while (i < end) {
    const int64_t group = i / kZoGroup, group_begin = group * kZoGroup;
    const int64_t zj = group_begin - begin;
    if (i == group_begin && end - i >= kLowBitBatch * kZoGroup) {
      draw(LowBitGroups<kLowBitBatch>(), group);
      for (int64_t j = zj; j < zj + kLowBitBatch * kZoGroup; j += kN) lanes(d, j, zj);
      i += kLowBitBatch * kZoGroup;
    } else {
      draw(LowBitGroups<1>(), group);
      const int64_t stop = std::min(end, group_begin + kZoGroup);
      if (i == group_begin && stop - i == kZoGroup) {
        for (int64_t j = zj; j < zj + kZoGroup; j += kN) lanes(d, j, zj);
      } else {
        for (int64_t j = i - begin; j < stop - begin; ++j) lanes(d1, j, zj);
      }
      i = stop;
    }
  }
}

struct LowBitStep {
  float lr, grad, wd, eps;
};

template <LowBitFormat kFmt, bool kUpdate, bool kPerturb, class D>
HWY_INLINE void LowBitLanes(D d, const LowBitStep& p, const float* HWY_RESTRICT z_prev,
                            const float* HWY_RESTRICT z, const uint32_t* HWY_RESTRICT words,
                            uint16_t* HWY_RESTRICT stored, float* HWY_RESTRICT plus,
                            float* HWY_RESTRICT minus, float* HWY_RESTRICT out_w) {
  const hn::Rebind<uint16_t, D> d16;
  const hn::RebindToUnsigned<D> du;
  auto w = Upcast<kFmt>(d, hn::LoadU(d16, stored));
  if constexpr (kUpdate) {
    const auto step = hn::Add(hn::Mul(hn::Set(d, p.grad), hn::LoadU(d, z_prev)), hn::Mul(hn::Set(d, p.wd), w));
    w = hn::Sub(w, hn::Mul(hn::Set(d, p.lr), step));
    const auto h = RoundStochastic<kFmt>(d, w, hn::LoadU(du, words));
    hn::StoreU(h, d16, stored);
    w = Upcast<kFmt>(d, h);  // the model sees the stored value
  }
  if constexpr (kPerturb) {
    const auto ez = hn::Mul(hn::Set(d, p.eps), hn::LoadU(d, z));
    hn::StoreU(hn::Add(w, ez), d, plus);
    if (minus != nullptr) hn::StoreU(hn::Sub(w, ez), d, minus);
  }
  if (out_w != nullptr) hn::StoreU(w, d, out_w);
}

template <LowBitFormat kFmt, ZDist kDist, bool kUpdate, bool kPerturb>
HWY_NOINLINE void LowBitPassT(uint32_t tensor_id, const ZoUpdate& upd, const ZoPerturb& pert,
                              int64_t begin, int64_t n, uint16_t* HWY_RESTRICT stored,
                              float* HWY_RESTRICT plus, float* HWY_RESTRICT minus,
                              float* HWY_RESTRICT out_w) {
  const LowBitStep p{upd.lr, upd.grad, upd.weight_decay, pert.eps};
  const ZoRoundKeys keys_prev = zo_round_keys(upd.seed), keys = zo_round_keys(pert.seed);
  HWY_ALIGN float z_prev[kLowBitBatch * kZoGroup];
  HWY_ALIGN float z[kLowBitBatch * kZoGroup];
  HWY_ALIGN uint32_t words[kLowBitBatch * kZoGroup];
  const auto draw = [&](auto count, int64_t group) {
    constexpr size_t kG = static_cast<size_t>(decltype(count)::value);
    const auto g = static_cast<uint64_t>(group);
    if constexpr (kUpdate) {
      ZGroups<kDist, kG>(keys_prev, g, tensor_id, z_prev);
      RoundingWords<kG>(keys_prev, g, tensor_id, words);
    }
    if constexpr (kPerturb) ZGroups<kDist, kG>(keys, g, tensor_id, z);
  };
  const auto lanes = [&](auto tag, int64_t j, int64_t zj) {
    const int64_t s = j - zj;
    LowBitLanes<kFmt, kUpdate, kPerturb>(tag, p, z_prev + s, z + s, words + s, stored + j,
                                         kPerturb ? plus + j : nullptr,
                                         kPerturb && minus ? minus + j : nullptr,
                                         out_w ? out_w + j : nullptr);
  };
  WalkGroups(begin, n, draw, lanes);
}

template <LowBitFormat kFmt, ZDist kDist>
HWY_INLINE void LowBitPassDist(uint32_t tensor_id, const ZoUpdate& upd, const ZoPerturb& pert,
                               int64_t begin, int64_t n, uint16_t* stored, float* plus, float* minus,
                               float* out_w) {
  if (upd.active && pert.active)
    LowBitPassT<kFmt, kDist, true, true>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
  else if (upd.active)
    LowBitPassT<kFmt, kDist, true, false>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
  else if (pert.active)
    LowBitPassT<kFmt, kDist, false, true>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
  else if constexpr (kDist == ZDist::Ones)  // a plain upcast: z is not drawn, any dist does
    LowBitPassT<kFmt, kDist, false, false>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
}

template <LowBitFormat kFmt>
HWY_INLINE void LowBitPassFmt(uint32_t tensor_id, ZDist dist, const ZoUpdate& upd, const ZoPerturb& pert,
                              int64_t begin, int64_t n, uint16_t* stored, float* plus, float* minus,
                              float* out_w) {
  if (!upd.active && !pert.active) dist = ZDist::Ones;
  switch (dist) {
    case ZDist::Gaussian:
      return LowBitPassDist<kFmt, ZDist::Gaussian>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
    case ZDist::Rademacher:
      return LowBitPassDist<kFmt, ZDist::Rademacher>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
    case ZDist::Ones:
      return LowBitPassDist<kFmt, ZDist::Ones>(tensor_id, upd, pert, begin, n, stored, plus, minus, out_w);
  }
}

void LowBitPass(uint32_t tensor_id, LowBitFormat fmt, ZDist dist, const ZoUpdate& upd, const ZoPerturb& pert,
                int64_t begin, int64_t n, uint16_t* stored, float* plus, float* minus, float* out_w) {
  if (fmt == LowBitFormat::BF16)
    LowBitPassFmt<LowBitFormat::BF16>(tensor_id, dist, upd, pert, begin, n, stored, plus, minus, out_w);
  else
    LowBitPassFmt<LowBitFormat::F16>(tensor_id, dist, upd, pert, begin, n, stored, plus, minus, out_w);
}

template <LowBitFormat kFmt>
HWY_NOINLINE void RoundRangeT(uint32_t tensor_id, uint64_t seed, int64_t begin, int64_t n,
                              const float* HWY_RESTRICT in, uint16_t* HWY_RESTRICT out) {
  const ZoRoundKeys keys = zo_round_keys(seed);
  HWY_ALIGN uint32_t words[kLowBitBatch * kZoGroup];
  const auto draw = [&](auto count, int64_t group) {
    RoundingWords<static_cast<size_t>(decltype(count)::value)>(keys, static_cast<uint64_t>(group), tensor_id,
                                                                words);
  };
  const auto lanes = [&](auto d, int64_t j, int64_t zj) {
    const hn::Rebind<uint16_t, decltype(d)> d16;
    const hn::RebindToUnsigned<decltype(d)> du;
    hn::StoreU(RoundStochastic<kFmt>(d, hn::LoadU(d, in + j), hn::LoadU(du, words + (j - zj))), d16, out + j);
  };
  WalkGroups(begin, n, draw, lanes);
}

void RoundRange(uint32_t tensor_id, LowBitFormat fmt, uint64_t seed, int64_t begin, int64_t n, const float* in,
                uint16_t* out) {
  if (fmt == LowBitFormat::BF16)
    RoundRangeT<LowBitFormat::BF16>(tensor_id, seed, begin, n, in, out);
  else
    RoundRangeT<LowBitFormat::F16>(tensor_id, seed, begin, n, in, out);
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <limits>

#include "base/error.h"
#include "kernels/isa.h"
#include "kernels/parallel.h"

namespace zotune::kernels {

HWY_EXPORT(LowBitPass);
HWY_EXPORT(RoundRange);

namespace {

// As in zo_kernels.cpp: 32K elements per thread at least, ranges split at
// group boundaries so that no group is generated twice.
constexpr int64_t kGrainGroups = 512;
constexpr int64_t kGroup = 64;

template <class Body>
void for_group_ranges(int64_t begin, int64_t n, const Body& body) {
  const int64_t first = begin / kGroup, last = (begin + n + kGroup - 1) / kGroup;
  detail::parallel_ranges(
      last - first, kGrainGroups,
      [&](int64_t gb, int64_t ge) {
        const int64_t b = std::max(begin, (first + gb) * kGroup);
        const int64_t e = std::min(begin + n, (first + ge) * kGroup);
        if (b < e) body(b, e);
      },
      1);
}

void check_range(const char* fn, uint32_t tensor_id, int64_t begin, int64_t n) {
  check(begin >= 0 && n >= 0 && n <= std::numeric_limits<int64_t>::max() - begin, fn, ": tensor ", tensor_id,
        ": bad element range begin=", begin, " n=", n);
}

}  // namespace

void zo_lowbit_update_perturb(uint32_t tensor_id, LowBitFormat fmt, ZDist dist, const ZoUpdate& upd,
                              const ZoPerturb& pert, int64_t begin, int64_t n, uint16_t* stored, float* plus,
                              float* minus, float* out_w) {
  check_range("zo_lowbit_update_perturb", tensor_id, begin, n);
  if (n == 0) return;
  check(stored != nullptr, "zo_lowbit_update_perturb: tensor ", tensor_id, ": null storage");
  check(!pert.active || plus != nullptr, "zo_lowbit_update_perturb: tensor ", tensor_id,
        ": perturbation active but plus is null");
  if (!upd.active && !pert.active && out_w == nullptr) return;
  detail::ensure_isa();
  for_group_ranges(begin, n, [&](int64_t b, int64_t e) {
    const int64_t o = b - begin;
    HWY_DYNAMIC_DISPATCH(LowBitPass)(tensor_id, fmt, dist, upd, pert, b, e - b, stored + o,
                                     pert.active ? plus + o : nullptr,
                                     pert.active && minus != nullptr ? minus + o : nullptr,
                                     out_w != nullptr ? out_w + o : nullptr);
  });
}

void zo_round_stochastic(uint32_t tensor_id, LowBitFormat fmt, uint64_t seed, int64_t begin, int64_t n,
                         const float* in, uint16_t* out) {
  check_range("zo_round_stochastic", tensor_id, begin, n);
  if (n == 0) return;
  check(in != nullptr && out != nullptr, "zo_round_stochastic: tensor ", tensor_id, ": null pointer");
  detail::ensure_isa();
  for_group_ranges(begin, n, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(RoundRange)(tensor_id, fmt, seed, b, e - b, in + (b - begin), out + (b - begin));
  });
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
