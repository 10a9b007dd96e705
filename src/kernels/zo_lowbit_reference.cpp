// Scalar references for zo_lowbit.h, written from its text with frexp/ldexp
// in double: neighbours and spacing are found numerically, not from bit masks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/zo_lowbit.h"

namespace zotune::kernels::ref {

namespace {

struct Format {
  int precision;     // significand bits including the implicit one
  int min_exponent;  // frexp exponent of the smallest normal value
  double overflow;   // the power of two past the largest finite value
};

Format format_of(LowBitFormat fmt) {
  if (fmt == LowBitFormat::BF16) return {8, -125, std::ldexp(1.0, 128)};
  return {11, -13, 65536.0};
}

uint16_t encode_exact(LowBitFormat fmt, double v) {  // v >= 0 and representable
  if (fmt == LowBitFormat::BF16) {
    const float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return static_cast<uint16_t>(bits >> 16);
  }
  if (v < std::ldexp(1.0, -14)) return static_cast<uint16_t>(v / std::ldexp(1.0, -24));
  int e = 0;
  std::frexp(v, &e);
  const double m = v / std::ldexp(1.0, e - 11) - 1024.0;
  return static_cast<uint16_t>(((e - 1 + 15) << 10) | static_cast<int>(m));
}

}  // namespace

float lowbit_to_f32(LowBitFormat fmt, uint16_t h) {
  if (fmt == LowBitFormat::BF16) {
    const uint32_t bits = uint32_t{h} << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double s = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 31) return static_cast<float>(m ? s * NAN : s * INFINITY);
  if (e == 0) return static_cast<float>(s * std::ldexp(m, -24));
  return static_cast<float>(s * std::ldexp(1024 + m, e - 25));
}

uint16_t round_stochastic(LowBitFormat fmt, float w, float u) {
  uint32_t bits;
  std::memcpy(&bits, &w, sizeof bits);
  const bool neg = std::signbit(w);
  const uint16_t sign = neg ? 0x8000 : 0;
  if (std::isnan(w)) {
    if (fmt == LowBitFormat::BF16) return static_cast<uint16_t>((bits >> 16) | 0x40);
    return static_cast<uint16_t>(sign | 0x7E00 | ((bits >> 13) & 0x3FF));
  }
  const Format f = format_of(fmt);
  const uint16_t inf = fmt == LowBitFormat::BF16 ? 0x7F80 : 0x7C00;
  const double a = std::fabs(static_cast<double>(w));
  if (a >= f.overflow) return static_cast<uint16_t>(sign | inf);
  if (a == 0) return sign;
  int e = 0;
  std::frexp(a, &e);
  const double ulp = std::ldexp(1.0, std::max(e, f.min_exponent) - f.precision);
  const double lo = std::floor(a / ulp) * ulp;
  const double frac = (a - lo) / ulp;
  const double v = static_cast<double>(u) < frac ? lo + ulp : lo;
  if (v >= f.overflow) return static_cast<uint16_t>(sign | inf);
  return static_cast<uint16_t>(sign | encode_exact(fmt, v));
}

void zo_lowbit_update_perturb(LowBitFormat fmt, const ZoUpdate& upd, const ZoPerturb& pert, int64_t n,
                              const float* z_prev, const float* z, const float* u, uint16_t* stored,
                              float* plus, float* minus, float* out_w) {
  for (int64_t i = 0; i < n; ++i) {
    float w = lowbit_to_f32(fmt, stored[i]);
    if (upd.active) {
      w = w - upd.lr * (upd.grad * z_prev[i] + upd.weight_decay * w);
      stored[i] = round_stochastic(fmt, w, u[i]);
      w = lowbit_to_f32(fmt, stored[i]);
    }
    if (pert.active) {
      plus[i] = w + pert.eps * z[i];
      if (minus != nullptr) minus[i] = w - pert.eps * z[i];
    }
    if (out_w != nullptr) out_w[i] = w;
  }
}

}  // namespace zotune::kernels::ref
