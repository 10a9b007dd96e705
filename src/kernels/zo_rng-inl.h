// The counter RNG of zo_kernels.h in SIMD: Philox4x32-7 on the 16 counter
// blocks of a 64-element group, and the float math that turns its words into z.
// Compiled once per Highway target (hence the toggle guard).
//
// z must be bitwise the same on every target, so the float math uses only
// IEEE-exact operations (+, -, *, sqrt, int<->float conversion of values below
// 2^25, bit operations) in one fixed order, never FMA, libm or Highway's
// approximate math; the including files are compiled with -ffp-contract=off.
// Head and tail elements of a range are cut from a whole group computed by the
// same code, so a sub-range gives exactly the z of the full tensor.
//
// Polynomial coefficients come from tools/fit_zo_polys.py (minimax fits of
// relative error), which also measures them over every input in a float32
// simulation of this operation order: ln(u1) 1.2 ulp, sqrt(-2 ln u1) relative
// error 1.04e-7, sin/cos(pi/2 s) for s in [0, 1/2] 1.6 / 1.2 ulp. The end
// result, z against double-precision Box-Muller over every u1 and every u2, is
// checked in tests/unit/test_zo_kernels.cpp: max error 6.3e-7 (|z| <= 5.77).

#if defined(ZOTUNE_KERNELS_ZO_RNG_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ZOTUNE_KERNELS_ZO_RNG_INL_H_
#undef ZOTUNE_KERNELS_ZO_RNG_INL_H_
#else
#define ZOTUNE_KERNELS_ZO_RNG_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "kernels/zo_kernels.h"

// Full unrolling keeps the Philox state in registers. The one-lane SCALAR
// fallback would need 16 times the code for nothing, and sanitizer builds of
// the unrolled code take minutes per target, so those keep the loops (the
// values do not depend on it).
#undef ZOTUNE_ZO_UNROLL
#if HWY_TARGET == HWY_SCALAR || defined(__SANITIZE_ADDRESS__)
#define ZOTUNE_ZO_UNROLL(n)
#else
#define ZOTUNE_ZO_UNROLL(n) HWY_UNROLL(n)
#endif

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kZoGroup = 64;  // elements per group of 16 Philox blocks

// At most 16 u32 lanes: one AVX-512 vector is exactly one group's blocks;
// narrower targets cover them with several vectors ("parts").
using ZoD32 = hn::CappedTag<uint32_t, 16>;
constexpr size_t kZoParts = 16 / hn::MaxLanes(ZoD32());

// Held as u64 so that each round key can be an embedded broadcast operand.
struct ZoRoundKeys {
  uint64_t k0[kZoPhiloxRounds], k1[kZoPhiloxRounds];
};

inline ZoRoundKeys zo_round_keys(uint64_t seed) {
  ZoRoundKeys keys;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < kZoPhiloxRounds; ++r) {
    keys.k0[r] = k0;
    keys.k1[r] = k1;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return keys;
}

// The four Philox words of every block of groups group .. group + kG - 1:
// w[r][g * kZoParts + p] holds word r of blocks p * Lanes .. (p + 1) * Lanes - 1
// of group + g. Several groups at once give the out-of-order core independent
// chains: one round is a multiply, a shuffle and a xor in sequence.
//
// Each block's counter words live in the low halves of u64 lanes (even blocks
// in one vector, odd blocks in another), so one MulEven yields lo and hi of the
// 32x32 product in place, and between rounds only hi moves down within its own
// u64 lane. High halves carry garbage that MulEven ignores and the final
// packing drops.
// (On Highway's one-lane SCALAR target the odd vector is computed and then
// dropped by OddEven, which keeps lane 0: correct, at twice the cost.)
template <size_t kG>
HWY_INLINE void PhiloxGroups(const ZoRoundKeys& keys, uint64_t group, uint32_t tensor_id,
                             uint32_t stream, hn::Vec<ZoD32> (&w)[4][kG * kZoParts]) {
  const ZoD32 d32;
  const hn::Repartition<uint64_t, ZoD32> d64;
  using V = hn::Vec<decltype(d64)>;
  constexpr size_t kN = hn::MaxLanes(ZoD32());
  constexpr size_t kParts = kG * kZoParts;
  constexpr size_t kVecs = 2 * kParts;

  const V even_lane = hn::ShiftLeft<1>(hn::Iota(d64, 0));
  V c0[kVecs], c1[kVecs], c2[kVecs], c3[kVecs];
  ZOTUNE_ZO_UNROLL(32)
  for (size_t v = 0; v < kVecs; ++v) {
    const size_t part = v / 2;
    // Block numbers are multiples of 16 plus 0..15: the low word never carries.
    const uint64_t first = (group + part / kZoParts) * 16;
    const uint64_t base = static_cast<uint32_t>(first) + (part % kZoParts) * kN + (v % 2);
    c0[v] = hn::Add(hn::Set(d64, base), even_lane);
    c1[v] = hn::Set(d64, first >> 32);
    c2[v] = hn::Set(d64, tensor_id);
    c3[v] = hn::Set(d64, stream);
  }
  const auto m0 = hn::Set(d32, 0xD2511F53u), m1 = hn::Set(d32, 0xCD9E8D57u);
  // With AVX-512, 512-bit shifts share port 0 with the multiplies while
  // shuffles run on port 5: there the high half is moved down by a shuffle.
  const auto hi_to_lo = [&](V p) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    return hn::BitCast(d64, hn::Shuffle2301(hn::BitCast(d32, p)));
#else
    return hn::ShiftRight<32>(p);
#endif
  };
  ZOTUNE_ZO_UNROLL(7)
  for (int r = 0; r < kZoPhiloxRounds; ++r) {
    const V k0 = hn::Set(d64, keys.k0[r]), k1 = hn::Set(d64, keys.k1[r]);
    ZOTUNE_ZO_UNROLL(32)
    for (size_t v = 0; v < kVecs; ++v) {
      const V p0 = hn::MulEven(hn::BitCast(d32, c0[v]), m0);
      const V p1 = hn::MulEven(hn::BitCast(d32, c2[v]), m1);
      c0[v] = hn::Xor3(hi_to_lo(p1), c1[v], k0);
      c2[v] = hn::Xor3(hi_to_lo(p0), c3[v], k1);
      c1[v] = p1;
      c3[v] = p0;
    }
  }
  ZOTUNE_ZO_UNROLL(32)
  for (size_t p = 0; p < kParts; ++p) {
    const auto pack = [&](const V& even, const V& odd) {
      return hn::OddEven(hn::BitCast(d32, hn::ShiftLeft<32>(odd)), hn::BitCast(d32, even));
    };
    w[0][p] = pack(c0[2 * p], c0[2 * p + 1]);
    w[1][p] = pack(c1[2 * p], c1[2 * p + 1]);
    w[2][p] = pack(c2[2 * p], c2[2 * p + 1]);
    w[3][p] = pack(c3[2 * p], c3[2 * p + 1]);
  }
}

template <class DF, class VF = hn::Vec<DF>>
HWY_INLINE VF ZoHorner(DF df, VF x, const float* c, int count) {
  VF r = hn::Set(df, c[count - 1]);
  ZOTUNE_ZO_UNROLL(8)
  for (int k = count - 2; k >= 0; --k) r = hn::Add(hn::Mul(r, x), hn::Set(df, c[k]));
  return r;
}

// Box-Muller on one pair of words: z_cos = rad cos(2 pi u2), z_sin = rad sin(2 pi u2).
template <class VU, class DF = hn::Rebind<float, hn::DFromV<VU>>>
HWY_INLINE void BoxMuller(VU wa, VU wb, hn::Vec<DF>& z_cos, hn::Vec<DF>& z_sin) {
  const hn::DFromV<VU> du;
  const hn::RebindToSigned<decltype(du)> di;
  const DF df;

  // ln u1 with u1 = m1 / 2^24, m1 = (wa >> 8) + 1 in [1, 2^24]: m1 = 2^e f. f is
  // kept in [sqrt(1/2), sqrt 2) so that f - 1 is exact and ln f never cancels
  // against e ln 2; ln u1 = (e - 24) ln 2 + ln(1 + x), x = f - 1.
  const VU m1 = hn::Add(hn::ShiftRight<8>(wa), hn::Set(du, 1u));
  const VU bits = hn::BitCast(du, hn::ConvertTo(df, hn::BitCast(di, m1)));
  VU mant = hn::Or(hn::And(bits, hn::Set(du, 0x007FFFFFu)), hn::Set(du, 0x3F800000u));
  const auto above = hn::Gt(hn::BitCast(di, mant), hn::Set(di, 0x3FB504F3));  // f > sqrt 2
  mant = hn::IfThenElse(hn::RebindMask(du, above), hn::Sub(mant, hn::Set(du, 0x00800000u)), mant);
  // e - 24, plus one where f was halved (the mask vector is -1 there).
  const auto e = hn::Sub(hn::Sub(hn::BitCast(di, hn::ShiftRight<23>(bits)), hn::Set(di, 127 + 24)),
                         hn::VecFromMask(di, above));
  static constexpr float kLn1p[8] = {-0.4999999f,  0.3333395f,  -0.25001755f, 0.19962068f,
                                     -0.16570497f, 0.14918002f, -0.1430763f,  0.08734897f};
  const auto x = hn::Sub(hn::BitCast(df, mant), hn::Set(df, 1.0f));
  const auto ln1p = hn::Add(x, hn::Mul(hn::Mul(x, x), ZoHorner(df, x, kLn1p, 8)));
  // ln 2 = hi + lo with hi = 355/512: (e - 24) hi is exact for |e - 24| <= 24.
  const auto ef = hn::ConvertTo(df, e);
  const auto ln_u1 = hn::Add(hn::Mul(ef, hn::Set(df, 0.693359375f)),
                             hn::Add(ln1p, hn::Mul(ef, hn::Set(df, -2.12194440e-4f))));
  const auto rad = hn::Sqrt(hn::Mul(ln_u1, hn::Set(df, -2.0f)));

  // 2 pi u2 with u2 = m / 2^24: the quadrant is m >> 22 (bits 31..30 of wb) and
  // bit 21 of m (bit 29 of wb) picks the octant half, so the reduction is exact
  // integer arithmetic: angle = quadrant pi/2 + pi/2 t, t = (m mod 2^22) / 2^22,
  // and sin/cos(pi/2 t) come from sin/cos(pi/2 s), s = min(t, 1 - t) in [0, 1/2].
  const VU rem = hn::And(hn::ShiftRight<8>(wb), hn::Set(du, 0x3FFFFFu));
  const auto upper_octant = hn::TestBit(wb, hn::Set(du, 1u << 29));
  const VU s_int = hn::IfThenElse(upper_octant, hn::Sub(hn::Set(du, 0x400000u), rem), rem);
  const auto s = hn::Mul(hn::ConvertTo(df, hn::BitCast(di, s_int)), hn::Set(df, 0x1p-22f));
  const auto s2 = hn::Mul(s, s);
  static constexpr float kSin[4] = {1.5707964f, -0.64596665f, 0.07971225f, -0.0046851975f};
  static constexpr float kCos[4] = {-1.2337005f, 0.25366923f, -0.020860165f, 0.0009037661f};
  const auto sin_s = hn::Mul(s, ZoHorner(df, s2, kSin, 4));
  const auto cos_s = hn::Add(hn::Set(df, 1.0f), hn::Mul(s2, ZoHorner(df, s2, kCos, 4)));
  // t = wb ^ (wb << 1): bit 30 = odd quadrant xor upper octant (sin and cos trade
  // places), bit 31 = quadrant 1 or 2 (cos < 0); sin < 0 in quadrants 2, 3 (bit 31).
  const VU t = hn::Xor(wb, hn::ShiftLeft<1>(wb));
  const auto swap = hn::RebindMask(df, hn::TestBit(t, hn::Set(du, 1u << 30)));
  const VU sign = hn::Set(du, 0x80000000u);
  const auto cos_a = hn::Xor(hn::IfThenElse(swap, sin_s, cos_s), hn::BitCast(df, hn::And(t, sign)));
  const auto sin_a =
      hn::Xor(hn::IfThenElse(swap, cos_s, sin_s), hn::BitCast(df, hn::And(wb, sign)));
  z_cos = hn::Mul(rad, cos_a);
  z_sin = hn::Mul(rad, sin_a);
}

// z for the kG * 64 elements of groups group .. group + kG - 1 (element
// (group + g) * 64 + r * 16 + k at out[g * 64 + r * 16 + k]).
template <ZDist kDist, size_t kG = 1>
HWY_INLINE void ZGroups(const ZoRoundKeys& keys, uint64_t group, uint32_t tensor_id,
                        float* HWY_RESTRICT out) {
  const ZoD32 du;
  const hn::Rebind<float, ZoD32> df;
  constexpr size_t kN = hn::MaxLanes(du);
  if constexpr (kDist == ZDist::Ones) {
    for (size_t i = 0; i < kG * kZoGroup; i += kN) hn::StoreU(hn::Set(df, 1.0f), df, out + i);
  } else {
    hn::Vec<ZoD32> w[4][kG * kZoParts];
    PhiloxGroups<kG>(keys, group, tensor_id, static_cast<uint32_t>(ZoStream::Perturbation), w);
    ZOTUNE_ZO_UNROLL(32)
    for (size_t q = 0; q < kG * kZoParts; ++q) {
      float* o = out + (q / kZoParts) * kZoGroup + (q % kZoParts) * kN;
      if constexpr (kDist == ZDist::Gaussian) {
        hn::Vec<decltype(df)> zc, zs;
        BoxMuller(w[0][q], w[1][q], zc, zs);
        hn::StoreU(zc, df, o);
        hn::StoreU(zs, df, o + 16);
        BoxMuller(w[2][q], w[3][q], zc, zs);
        hn::StoreU(zc, df, o + 32);
        hn::StoreU(zs, df, o + 48);
      } else {
        // -1.0f with the sign bit flipped where bit 31 of the word is set.
        const auto minus_one = hn::Set(du, 0xBF800000u), sign = hn::Set(du, 0x80000000u);
        ZOTUNE_ZO_UNROLL(4)
        for (int r = 0; r < 4; ++r)
          hn::StoreU(hn::BitCast(df, hn::Xor(hn::And(w[r][q], sign), minus_one)), df, o + 16 * r);
      }
    }
  }
}

// Uniform [0, 1) noise of the Rounding stream, laid out as in ZGroups.
template <size_t kG = 1>
HWY_INLINE void UniformGroups(const ZoRoundKeys& keys, uint64_t group, uint32_t tensor_id,
                              float* HWY_RESTRICT out) {
  const ZoD32 du;
  const hn::RebindToSigned<ZoD32> di;
  const hn::Rebind<float, ZoD32> df;
  constexpr size_t kN = hn::MaxLanes(du);
  hn::Vec<ZoD32> w[4][kG * kZoParts];
  PhiloxGroups<kG>(keys, group, tensor_id, static_cast<uint32_t>(ZoStream::Rounding), w);
  ZOTUNE_ZO_UNROLL(32)
  for (size_t q = 0; q < kG * kZoParts; ++q) {
    float* o = out + (q / kZoParts) * kZoGroup + (q % kZoParts) * kN;
    ZOTUNE_ZO_UNROLL(4)
    for (int r = 0; r < 4; ++r) {
      const auto m = hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<8>(w[r][q])));
      hn::StoreU(hn::Mul(m, hn::Set(df, 0x1p-24f)), df, o + 16 * r);
    }
  }
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
