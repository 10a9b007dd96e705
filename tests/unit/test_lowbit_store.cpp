// The low-bit RAM tier: the fused 16-bit kernel against its scalar reference
// (kernels/zo_lowbit.h) on every ISA target and thread count, the statistics of
// stochastic rounding, the drift of many sub-ulp updates against fp32 and
// round-to-nearest, and LowBitRamStore under the ZO engine against RamStore.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/threads.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/zo_lowbit.h"
#include "kernels/zo_reference.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/weights.h"
#include "store/lowbit_store.h"
#include "store/store_factory.h"
#include "test_util.h"
#include "train/engine.h"
#include "zo/replay.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;
using kernels::LowBitFormat;
using kernels::ZDist;

constexpr LowBitFormat kFormats[] = {LowBitFormat::BF16, LowBitFormat::F16};

std::string fmt_name(LowBitFormat f) { return f == LowBitFormat::BF16 ? "bf16" : "f16"; }

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

template <class T>
int64_t first_diff(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  return -1;
}

std::vector<float> ref_uniform(uint64_t seed, uint32_t tensor, int64_t begin, int64_t n) {
  std::vector<float> u(static_cast<size_t>(n));
  kernels::ref::zo_fill_uniform(seed, tensor, begin, n, u.data());
  return u;
}

struct ExecutionGuard {
  int threads = omp_get_max_threads();
  ~ExecutionGuard() {
    kernels::force_isa("native");
    omp_set_num_threads(threads);
  }
};

// Interesting fp32 inputs for rounding: random magnitudes over the whole range,
// values next to format boundaries, specials.
std::vector<float> rounding_inputs(LowBitFormat fmt, int64_t n) {
  std::mt19937 rng(42);
  std::vector<float> x;
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, -NAN, from_bits(0x7F800001u),
                            from_bits(0x7F7FFFFFu), from_bits(0xFF7FFFFFu), from_bits(0x00000001u),
                            from_bits(0x807FFFFFu), 65504.0f, 65519.0f, 65520.0f, 65535.9f, 65536.0f,
                            -70000.0f, 0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 0x1.fffffep-15f,
                            3.0f * 0x1p-26f, 0x1.ffp-15f};
  x.assign(std::begin(specials), std::end(specials));
  while (static_cast<int64_t>(x.size()) < n) {
    const uint32_t r = rng();
    switch (r % 4) {
      case 0: x.push_back(from_bits(rng())); break;  // any pattern, NaNs included
      case 1: {  // the f16 range, subnormals included
        std::uniform_real_distribution<float> e(-30.0f, 17.0f);
        x.push_back((r & 16 ? -1.0f : 1.0f) * std::exp2(e(rng)));
        break;
      }
      case 2: x.push_back(std::normal_distribution<float>(0.0f, 0.05f)(rng)); break;
      default: {  // exactly representable in the format
        const auto h = static_cast<uint16_t>(rng());
        x.push_back(kernels::ref::lowbit_to_f32(fmt, h));
      }
    }
  }
  x.resize(static_cast<size_t>(n));
  return x;
}

// ---- scalar reference

TEST(LowBitReference, UpcastMatchesCastKernelsOnEveryPattern) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> bf(65536), hf(65536);
  kernels::bf16_to_f32(all.data(), bf.data(), 65536);
  kernels::f16_to_f32(all.data(), hf.data(), 65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float b = kernels::ref::lowbit_to_f32(LowBitFormat::BF16, h);
    const float f = kernels::ref::lowbit_to_f32(LowBitFormat::F16, h);
    ASSERT_EQ(bits_of(b), bits_of(bf[i])) << std::hex << i;
    if (std::isnan(hf[i])) ASSERT_TRUE(std::isnan(f)) << std::hex << i;
    else ASSERT_EQ(bits_of(f), bits_of(hf[i])) << std::hex << i;
  }
}

TEST(LowBitReference, KnownRoundings) {
  using kernels::ref::round_stochastic;
  const LowBitFormat B = LowBitFormat::BF16, H = LowBitFormat::F16;
  // 1 + 0.25 ulp (bf16 ulp at 1 is 2^-7): up iff u < 0.25.
  EXPECT_EQ(round_stochastic(B, 1.0f + 0x1p-9f, 0.2f), 0x3F81);
  EXPECT_EQ(round_stochastic(B, 1.0f + 0x1p-9f, 0.25f), 0x3F80);
  EXPECT_EQ(round_stochastic(B, -(1.0f + 0x1p-9f), 0.1f), 0xBF81);  // away from zero
  EXPECT_EQ(round_stochastic(B, 1.0f, 0.0f), 0x3F80);               // exact stays exact
  EXPECT_EQ(round_stochastic(B, from_bits(0x7F7FFFFFu), 0.5f), 0x7F80);  // past bf16 max: Inf
  EXPECT_EQ(round_stochastic(B, from_bits(0x7F7FFFFFu), 0.99999f), 0x7F7F);  // frac = 1 - 2^-16
  EXPECT_EQ(round_stochastic(B, -INFINITY, 0.3f), 0xFF80);
  EXPECT_EQ(round_stochastic(B, from_bits(0x7F800001u), 0.3f), 0x7FC0);  // NaN stays NaN (quiet)
  EXPECT_EQ(round_stochastic(B, from_bits(0x00000001u), 0.0f), 0x0001);  // fp32 subnormal, tiny frac
  EXPECT_EQ(round_stochastic(B, from_bits(0x00000001u), 0.5f), 0x0000);
  // f16: ulp at 1 is 2^-10; subnormal spacing 2^-24; max 65504, Inf past 65536.
  EXPECT_EQ(round_stochastic(H, 1.0f + 0x1p-12f, 0.2f), 0x3C01);
  EXPECT_EQ(round_stochastic(H, 1.0f + 0x1p-12f, 0.3f), 0x3C00);
  EXPECT_EQ(round_stochastic(H, 0.75f * 0x1p-24f, 0.7f), 0x0001);
  EXPECT_EQ(round_stochastic(H, 0.75f * 0x1p-24f, 0.8f), 0x0000);
  EXPECT_EQ(round_stochastic(H, -0x1.ffcp-15f, 0.1f), 0x8400);  // 1023.5 x 2^-24: between 0x3FF and 0x400
  EXPECT_EQ(round_stochastic(H, 65520.0f, 0.4f), 0x7C00);      // halfway to 65536: Inf half the time
  EXPECT_EQ(round_stochastic(H, 65520.0f, 0.6f), 0x7BFF);
  EXPECT_EQ(round_stochastic(H, 70000.0f, 0.999f), 0x7C00);
  EXPECT_EQ(round_stochastic(H, -1e30f, 0.0f), 0xFC00);
  EXPECT_EQ(round_stochastic(H, NAN, 0.0f) & 0x7E00, 0x7E00);
}

// ---- SIMD kernels against the reference

std::vector<uint16_t> simd_round(LowBitFormat fmt, uint64_t seed, uint32_t tensor, int64_t begin,
                                 const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  kernels::zo_round_stochastic(tensor, fmt, seed, begin, static_cast<int64_t>(x.size()), x.data(), out.data());
  return out;
}

std::vector<uint16_t> ref_round(LowBitFormat fmt, uint64_t seed, uint32_t tensor, int64_t begin,
                                const std::vector<float>& x) {
  const auto u = ref_uniform(seed, tensor, begin, static_cast<int64_t>(x.size()));
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = kernels::ref::round_stochastic(fmt, x[i], u[i]);
  return out;
}

TEST(LowBitKernels, RoundingMatchesReferenceOnEveryTarget) {
  ExecutionGuard guard;
  std::set<std::string> seen;
  for (const std::string& isa : kernels::available_isas()) {
    kernels::force_isa(isa);
    seen.insert(isa);
    for (LowBitFormat fmt : kFormats) {
      const auto x = rounding_inputs(fmt, 40003);
      const int64_t begin = 29;
      const auto got = simd_round(fmt, 99, 4, begin, x), want = ref_round(fmt, 99, 4, begin, x);
      const int64_t d = first_diff(got, want);
      ASSERT_EQ(d, -1) << isa << " " << fmt_name(fmt) << " x=" << std::hexfloat << x[d] << " got " << std::hex
                       << got[d] << " want " << want[d];
    }
  }
  std::string names;
  for (const auto& s : seen) names += s + " ";
  std::cout << "targets compared: " << names << "\n";
  EXPECT_GE(seen.size(), 2u);
}

struct Case {
  ZDist dist;
  bool update, perturb, minus, out_w;
  float wd;
};

// Runs the fused kernel and the reference on the same inputs; returns false
// (with a message) on the first bitwise difference.
::testing::AssertionResult fused_matches(LowBitFormat fmt, const Case& c, int64_t begin, int64_t n) {
  const uint32_t tensor = 6;
  const kernels::ZoUpdate upd{c.update, 1234, 3e-3f, -0.9f, c.wd};
  const kernels::ZoPerturb pert{c.perturb, 5678, 1e-3f};
  std::mt19937 rng(static_cast<uint32_t>(n));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const size_t un = static_cast<size_t>(n);
  std::vector<float> w32(un);
  for (float& v : w32) v = normal(rng);
  if (n > 0) w32[0] = 3.5f;
  std::vector<uint16_t> stored(un);
  if (fmt == LowBitFormat::BF16) kernels::f32_to_bf16(w32.data(), stored.data(), n);
  else kernels::f32_to_f16(w32.data(), stored.data(), n);
  std::vector<float> z_prev(un), z(un);
  kernels::zo_fill_z(upd.seed, tensor, c.dist, begin, n, z_prev.data());
  kernels::zo_fill_z(pert.seed, tensor, c.dist, begin, n, z.data());
  const auto u = ref_uniform(upd.seed, tensor, begin, n);
  auto want_s = stored, got_s = stored;
  std::vector<float> want_p(un, -7.0f), want_m(un, -7.0f), want_w(un, -7.0f);
  auto got_p = want_p, got_m = want_m, got_w = want_w;
  kernels::ref::zo_lowbit_update_perturb(fmt, upd, pert, n, z_prev.data(), z.data(), u.data(), want_s.data(),
                                         want_p.data(), c.minus ? want_m.data() : nullptr,
                                         c.out_w ? want_w.data() : nullptr);
  kernels::zo_lowbit_update_perturb(tensor, fmt, c.dist, upd, pert, begin, n, got_s.data(),
                                    c.perturb ? got_p.data() : nullptr, c.minus ? got_m.data() : nullptr,
                                    c.out_w ? got_w.data() : nullptr);
  const std::string where = fmt_name(fmt) + " dist " + std::to_string(int(c.dist)) + " upd " +
                            std::to_string(c.update) + " pert " + std::to_string(c.perturb) + " minus " +
                            std::to_string(c.minus) + " out_w " + std::to_string(c.out_w) + " begin " +
                            std::to_string(begin) + " n " + std::to_string(n);
  if (first_diff(got_s, want_s) != -1) return ::testing::AssertionFailure() << "stored " << where;
  if (first_diff(got_p, want_p) != -1) return ::testing::AssertionFailure() << "plus " << where;
  if (first_diff(got_m, want_m) != -1) return ::testing::AssertionFailure() << "minus " << where;
  if (first_diff(got_w, want_w) != -1) return ::testing::AssertionFailure() << "out_w " << where;
  if (c.update && n > 1000 && first_diff(got_s, stored) == -1)
    return ::testing::AssertionFailure() << "update did not change storage " << where;
  return ::testing::AssertionSuccess();
}

TEST(LowBitKernels, FusedPassMatchesReference) {
  struct Range {
    int64_t begin, n;
  };
  const Range ranges[] = {{0, 1}, {5, 63}, {64, 64}, {3, 1000}, {61, 70001}};
  int checked = 0;
  for (LowBitFormat fmt : kFormats)
    for (ZDist dist : {ZDist::Gaussian, ZDist::Rademacher, ZDist::Ones})
      for (int combo = 0; combo < 16; ++combo) {
        const Case c{dist, (combo & 1) != 0, (combo & 2) != 0, (combo & 2) != 0 && (combo & 4) != 0,
                     (combo & 8) != 0, (combo & 4) ? 0.1f : 0.0f};
        for (const Range& r : ranges) {
          ASSERT_TRUE(fused_matches(fmt, c, r.begin, r.n));
          ++checked;
        }
      }
  EXPECT_EQ(checked, 2 * 3 * 16 * 5);
}

TEST(LowBitKernels, FusedPassMatchesReferenceOnEveryTarget) {
  ExecutionGuard guard;
  for (const std::string& isa : kernels::available_isas()) {
    kernels::force_isa(isa);
    for (LowBitFormat fmt : kFormats) {
      ASSERT_TRUE(fused_matches(fmt, {ZDist::Gaussian, true, true, true, true, 0.05f}, 37, 100003)) << isa;
      ASSERT_TRUE(fused_matches(fmt, {ZDist::Rademacher, true, false, false, true, 0.0f}, 0, 4099)) << isa;
    }
  }
}

TEST(LowBitKernels, ThreadCountAndSubRangesDoNotChangeResults) {
  ExecutionGuard guard;
  const int64_t n = 300001;
  auto run = [&](int threads, int64_t begin, int64_t count) {
    omp_set_num_threads(threads);
    std::vector<uint16_t> s(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) s[static_cast<size_t>(i)] = static_cast<uint16_t>(0x3C00 + (begin + i) % 977);
    std::vector<float> p(s.size()), m(s.size());
    const kernels::ZoUpdate upd{true, 11, 1e-2f, 0.5f, 0.01f};
    const kernels::ZoPerturb pert{true, 12, 1e-3f};
    kernels::zo_lowbit_update_perturb(3, LowBitFormat::BF16, ZDist::Gaussian, upd, pert, begin, count, s.data(),
                                      p.data(), m.data(), nullptr);
    std::vector<float> all(p);
    all.insert(all.end(), m.begin(), m.end());
    for (uint16_t h : s) all.push_back(static_cast<float>(h));
    return all;
  };
  const auto one = run(1, 0, n), two = run(2, 0, n);
  EXPECT_EQ(first_diff(one, two), -1);
  // Elements [b, b + c) computed alone equal the same elements of the whole pass.
  const int64_t b = 12345, c = 250001;
  const auto part = run(2, b, c);
  for (int64_t i = 0; i < c; ++i) {
    const auto k = static_cast<size_t>(i);
    ASSERT_EQ(bits_of(part[k]), bits_of(one[static_cast<size_t>(b + i)])) << i;                  // plus
    ASSERT_EQ(bits_of(part[2 * c + k]), bits_of(one[2 * n + static_cast<size_t>(b + i)])) << i;  // stored
  }
}

// ---- statistics of stochastic rounding

// Rounds x (n copies, each with its own uniform) and checks that the fraction
// rounded up matches frac within 5 standard errors and the mean equals x.
void expect_unbiased(LowBitFormat fmt, float x, uint16_t lo, uint16_t hi, double frac) {
  const int64_t n = 1 << 18;
  const std::vector<float> in(static_cast<size_t>(n), x);
  std::vector<uint16_t> out(in.size());
  kernels::zo_round_stochastic(1, fmt, 2026, 0, n, in.data(), out.data());
  int64_t up = 0;
  double sum = 0;
  for (uint16_t h : out) {
    ASSERT_TRUE(h == lo || h == hi) << fmt_name(fmt) << " x=" << x << " got " << std::hex << h;
    up += h == hi;
    sum += kernels::ref::lowbit_to_f32(fmt, h);
  }
  const double p = static_cast<double>(up) / n, se = std::sqrt(frac * (1 - frac) / n);
  EXPECT_NEAR(p, frac, 5 * se + 1e-12) << fmt_name(fmt) << " x=" << x;
  if (std::isfinite(kernels::ref::lowbit_to_f32(fmt, hi))) {
    const double lo_v = kernels::ref::lowbit_to_f32(fmt, lo), hi_v = kernels::ref::lowbit_to_f32(fmt, hi);
    EXPECT_NEAR(sum / n, x, 5 * se * std::fabs(hi_v - lo_v) + 1e-30) << fmt_name(fmt) << " x=" << x;
  }
}

TEST(LowBitKernels, StochasticRoundingIsUnbiased) {
  const LowBitFormat B = LowBitFormat::BF16, H = LowBitFormat::F16;
  expect_unbiased(B, 1.0f + 0.3f * 0x1p-7f, 0x3F80, 0x3F81, 0.3f * 1.0);  // 0.3 ulp above 1
  expect_unbiased(B, -(1.0f + 0x1p-12f), 0xBF80, 0xBF81, 1.0 / 32);
  expect_unbiased(B, 3.0f * 0x1p-136f, 0x0000, 0x0001, 0.375);  // bf16 subnormals (fp32 subnormal range)
  expect_unbiased(H, 1.0f + 0.7f * 0x1p-10f, 0x3C00, 0x3C01, 0.7);
  expect_unbiased(H, 0.25f * 0x1p-24f, 0x0000, 0x0001, 0.25);      // below the smallest subnormal
  expect_unbiased(H, 100.5f * 0x1p-24f, 100, 101, 0.5);            // between two subnormals
  expect_unbiased(H, 0x1.ffcp-15f, 0x03FF, 0x0400, 0.5);          // subnormal -> smallest normal
  expect_unbiased(H, -65512.0f, 0xFBFF, 0xFC00, 0.25);           // max -> -Inf with frac 8/32
}

TEST(LowBitKernels, ExactValuesStayExact) {
  for (LowBitFormat fmt : kFormats) {
    std::vector<uint16_t> stored(65536);
    for (uint32_t i = 0; i < 65536; ++i) stored[i] = static_cast<uint16_t>(i);
    std::vector<float> w(stored.size());
    std::vector<uint16_t> want;
    // Every finite pattern: an update with lr = 0 recomputes w exactly, then
    // rounding must return the same bits whatever the noise.
    auto s = stored;
    const kernels::ZoUpdate upd{true, 77, 0.0f, 1.0f, 0.0f};
    kernels::zo_lowbit_update_perturb(0, fmt, ZDist::Gaussian, upd, {}, 0, 65536, s.data(), nullptr, nullptr,
                                      w.data());
    for (uint32_t i = 0; i < 65536; ++i) {
      const float v = kernels::ref::lowbit_to_f32(fmt, stored[i]);
      // 0 * Inf is NaN and -0 - (+0) is +0: only finite non-zero values keep their bits.
      if (!std::isfinite(v)) continue;
      ASSERT_EQ(w[i], v) << fmt_name(fmt) << " pattern " << std::hex << i;
      if (v == 0) continue;
      ASSERT_EQ(s[i], stored[i]) << fmt_name(fmt) << " pattern " << std::hex << i;
      ASSERT_EQ(bits_of(w[i]), bits_of(v)) << fmt_name(fmt) << " pattern " << std::hex << i;
    }
  }
}

// ---- drift under many sub-ulp updates (the reason for stochastic rounding)

TEST(LowBitKernels, SubUlpUpdatesTrackFp32DriftWithStochasticRounding) {
  // 4096 bf16 weights in [1, 1.5) (ulp 2^-7), 2000 updates of +2e-5 each
  // (2.6e-3 ulp, 1.3e-5 relative): fp32 drifts by 0.04 = 5.1 ulp. The deferred
  // update is w -= lr (g z + wd w) with z = 1 (Ones), lr = 1, g = -2e-5.
  const int64_t n = 4096, steps = 2000;
  const float delta = 2e-5f, ulp = 0x1p-7f;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> start(1.0f, 1.5f);
  std::vector<float> w32(n);
  for (float& v : w32) v = start(rng);
  std::vector<uint16_t> sr(n), rne(n);
  kernels::f32_to_bf16(w32.data(), sr.data(), n);
  kernels::bf16_to_f32(sr.data(), w32.data(), n);  // all three start on the same bf16 values
  rne = sr;
  const auto w0 = w32;
  std::vector<float> tmp(n);
  for (int64_t t = 0; t < steps; ++t) {
    const kernels::ZoUpdate upd{true, 1000 + static_cast<uint64_t>(t), 1.0f, -delta, 0.0f};
    kernels::zo_update_perturb(0, ZDist::Ones, upd, {}, 0, n, w32.data(), nullptr, nullptr);
    kernels::zo_lowbit_update_perturb(0, LowBitFormat::BF16, ZDist::Ones, upd, {}, 0, n, sr.data(), nullptr,
                                      nullptr, nullptr);
    // Round to nearest even of the same fp32 update.
    kernels::bf16_to_f32(rne.data(), tmp.data(), n);
    for (float& v : tmp) v = v - 1.0f * (-delta * 1.0f + 0.0f * v);
    kernels::f32_to_bf16(tmp.data(), rne.data(), n);
  }
  std::vector<float> sr32(n), rne32(n);
  kernels::bf16_to_f32(sr.data(), sr32.data(), n);
  kernels::bf16_to_f32(rne.data(), rne32.data(), n);
  double drift32 = 0, drift_sr = 0, drift_rne = 0, err = 0, err2 = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    drift32 += (w32[i] - w0[i]) / ulp;
    drift_sr += (sr32[i] - w0[i]) / ulp;
    drift_rne += (rne32[i] - w0[i]) / ulp;
    const double e = (sr32[i] - w32[i]) / ulp;
    err += e;
    err2 += e * e;
    worst = std::max(worst, std::fabs(e));
  }
  drift32 /= n, drift_sr /= n, drift_rne /= n, err /= n;
  const double var = err2 / n - err * err;
  // Each step rounds up with probability delta/ulp, so the error is a sum of
  // 2000 independent centred terms: variance ~ steps * delta/ulp = 5.1 ulp^2.
  const double want_var = static_cast<double>(steps) * delta / ulp;
  std::cout << "drift over " << steps << " updates, in bf16 ulps: fp32 " << drift32 << ", stochastic " << drift_sr
            << ", nearest-even " << drift_rne << "; error var " << var << " (expected ~" << want_var
            << "), worst |error| " << worst << " ulp\n";
  EXPECT_NEAR(drift32, 5.12, 0.05);
  EXPECT_EQ(drift_rne, 0.0) << "round-to-nearest-even keeps every sub-ulp update from landing";
  EXPECT_NEAR(err, 0.0, 5 * std::sqrt(want_var / n));  // mean error: 5 standard errors (0.18 ulp)
  EXPECT_NEAR(var, want_var, 0.15 * want_var);
  EXPECT_LE(worst, 8 * std::sqrt(want_var));  // every weight within a few sigma (8 sigma = 18 ulp)
}

// ---- the store


std::vector<float> all_weights(const ParamStore& store) {
  std::vector<float> all;
  for (size_t i = 0; i < store.arch().tensors().size(); ++i) {
    std::vector<float> v(static_cast<size_t>(store.arch().tensors()[i].numel()));
    store.read_tensor(static_cast<int>(i), v.data());
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

struct RunResult {
  std::vector<StepResult> steps;
  double eval_loss = 0;
  std::vector<float> weights;
};

RunResult run_engine(const fs::path& model, std::optional<DType> lowbit, int steps, bool one_sided = false) {
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  std::unique_ptr<ParamStore> store;
  if (lowbit) store = std::make_unique<LowBitRamStore>(*arch, ckpt, *lowbit);
  else store = std::make_unique<RamStore>(*arch, ckpt);
  MezoOptions opt;
  opt.lr = 1e-3f;
  opt.eps = 1e-3f;
  opt.weight_decay = 0.01f;
  opt.one_sided = one_sided;
  ZoEngine engine(*arch, *store, opt, 31);
  const Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8, 12, 19, 23}, {7, 3, 99, 14, 6}}, 0);
  RunResult r;
  for (int t = 0; t < steps; ++t) r.steps.push_back(engine.step(t, steps, batch));
  r.eval_loss = engine.evaluate(batch).loss;
  r.weights = all_weights(*store);
  if (lowbit) {  // eval sees exactly the stored weights
    std::vector<std::vector<float>> w(arch->tensors().size());
    std::vector<const float*> ptrs;
    for (size_t i = 0; i < w.size(); ++i) {
      w[i].resize(static_cast<size_t>(arch->tensors()[i].numel()));
      store->read_tensor(static_cast<int>(i), w[i].data());
      ptrs.push_back(w[i].data());
    }
    ForwardPass pass(*arch);
    pass.start(batch.ids.data(), batch.mask.data(), batch.B, batch.T);
    pass.run_body(ptrs);
    std::vector<float> logits(batch.rows.size() * static_cast<size_t>(arch->config().vocab_size));
    pass.logits(ptrs, batch.rows.data(), static_cast<int64_t>(batch.rows.size()), logits.data());
    AlignedBuffer<float> scratch;
    EXPECT_EQ(batch_loss(batch, logits.data(), arch->config().vocab_size, scratch).loss, r.eval_loss);
  }
  return r;
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(1e-30, std::fabs(b)); }

// Free-running ZO engines, bf16 store against fp32 store, on the same bf16
// checkpoint. Both start from the same weights, so step 1 is bit-identical.
// Afterwards the stored weights differ by the stochastic rounding of each update
// (< 1 bf16 ulp, 2^-8..2^-7 relative, per weight and update), which alone puts
// the losses ~1e-3 apart (SameUpdatesDifferOnlyByRounding: 3e-4 .. 3.1e-3 after
// 1..6 updates); the projected gradients then differ by a few percent and the
// trajectories drift too. Measured over 6 steps at lr = 1e-3 (large for these
// random models, |g| up to 10, so each update is ~50 ulps): worst 1.4e-3
// relative (qwen3_bf16), 3.0e-3 (llama_bf16). Bound 1e-2: 3x the worst
// measured, the size of one step's own loss change here.
TEST(LowBitStore, EngineLossesCloseToFp32Store) {
  for (const char* name : {"qwen3_bf16", "llama_bf16"}) {
    const fs::path model = testing::golden_dir() / name;
    const auto f32 = run_engine(model, std::nullopt, 6);
    const auto b16 = run_engine(model, DType::BF16, 6);
    double worst = 0;
    for (size_t t = 0; t < f32.steps.size(); ++t) {
      worst = std::max({worst, rel(b16.steps[t].loss_plus, f32.steps[t].loss_plus),
                        rel(b16.steps[t].loss_minus, f32.steps[t].loss_minus)});
      EXPECT_LE(rel(b16.steps[t].loss_plus, f32.steps[t].loss_plus), 1e-2) << name << " step " << t + 1;
      EXPECT_LE(rel(b16.steps[t].loss_minus, f32.steps[t].loss_minus), 1e-2) << name << " step " << t + 1;
    }
    EXPECT_EQ(b16.steps[0].loss_plus, f32.steps[0].loss_plus) << name;
    EXPECT_EQ(b16.steps[0].loss_minus, f32.steps[0].loss_minus) << name;
    EXPECT_EQ(b16.steps[0].grad, f32.steps[0].grad) << name;
    EXPECT_LE(rel(b16.eval_loss, f32.eval_loss), 1e-2) << name;
    std::cout << name << ": worst relative loss difference, free-running bf16 vs fp32 store, 6 steps: " << worst
              << "\n";
  }
}

// The same updates (the fp32 run's seeds, lr and g) applied to both stores:
// now the only difference is the rounding. Every update moves a bf16 weight at
// most one ulp further from its fp32 twin (|round(x) - x| < ulp(x) <= 2^-7 |x|),
// which every weight must satisfy. The losses, moved by those independent
// per-weight errors, measured 3.3e-4 / 1.4e-3 / 1.0e-3 / 1.1e-3 / 5.2e-4 /
// 1.1e-3 relative after updates 1..6 (qwen3_bf16) and 9.6e-4 / 5.7e-4 /
// 5.3e-4 / 2.4e-5 / 3.1e-3 / 2.0e-3 (llama_bf16): a noise floor of ~1e-3 that
// does not grow with the steps, as the ~2^-8 relative weight error predicts.
// Bound 6e-3, twice the worst measured.
TEST(LowBitStore, SameUpdatesDifferOnlyByRounding) {
  for (const char* name : {"qwen3_bf16", "llama_bf16"}) {
    const fs::path model = testing::golden_dir() / name;
    auto arch = load_architecture(model);
    Checkpoint ckpt(model);
    RamStore f32(*arch, ckpt);
    LowBitRamStore b16(*arch, ckpt, DType::BF16);
    MezoOptions opt;
    opt.lr = 1e-3f;
    opt.weight_decay = 0.01f;
    const Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8, 12, 19, 23}, {7, 3, 99, 14, 6}}, 0);
    std::vector<UpdateRecord> records;
    {
      RamStore driver(*arch, ckpt);
      ZoEngine engine(*arch, driver, opt, 31);
      for (int t = 0; t < 6; ++t) {
        const StepResult r = engine.step(t, 6, batch);
        records.push_back({r.step, r.seed, r.lr, static_cast<float>(r.grad)});
      }
    }
    ZoEngine eval_f32(*arch, f32, opt, 0), eval_b16(*arch, b16, opt, 0);
    std::vector<double> bound(static_cast<size_t>(f32.total_params()), 0.0);
    double worst = 0;
    for (const UpdateRecord& rec : records) {
      replay(f32, opt.dist, opt.weight_decay, {rec});
      replay(b16, opt.dist, opt.weight_decay, {rec});
      const auto wf = all_weights(f32), wb = all_weights(b16);
      for (size_t i = 0; i < wf.size(); ++i) {
        bound[i] += 0x1p-7 * std::max(std::fabs(wf[i]), std::fabs(wb[i])) * 1.02 + 1e-12;
        ASSERT_LE(std::fabs(double(wb[i]) - wf[i]), bound[i]) << name << " step " << rec.step << " weight " << i;
      }
      const double lf = eval_f32.forward_unflushed(batch).loss, lb = eval_b16.forward_unflushed(batch).loss;
      worst = std::max(worst, rel(lb, lf));
      EXPECT_LE(rel(lb, lf), 6e-3) << name << " after update " << rec.step;
    }
    std::cout << name << ": worst relative loss difference, same updates, bf16 vs fp32 store: " << worst << "\n";
  }
}

TEST(LowBitStore, RunsAreBitIdenticalAcrossRepeatsAndThreadCounts) {
  const fs::path model = testing::golden_dir() / "qwen3_bf16";
  const int before = compute_threads();
  set_compute_threads(1);
  const auto one = run_engine(model, DType::BF16, 4);
  set_compute_threads(2);
  const auto two = run_engine(model, DType::BF16, 4);
  const auto again = run_engine(model, DType::BF16, 4);
  set_compute_threads(before);
  for (const auto* other : {&two, &again}) {
    ASSERT_EQ(first_diff(one.weights, other->weights), -1);
    for (size_t t = 0; t < one.steps.size(); ++t) {
      EXPECT_EQ(one.steps[t].loss_plus, other->steps[t].loss_plus);
      EXPECT_EQ(one.steps[t].loss_minus, other->steps[t].loss_minus);
    }
  }
}

// qwen3 (fp32 file, tied head: block 0 keeps its own slot until the head has
// run) in both 16-bit formats, two- and one-sided. The store rounds the fp32
// file to nearest even at load; RamStore on a copy of the checkpoint saved in
// that dtype (the same rounding) starts from the same weights, so step 1 must
// be bit-identical, and later steps differ by the stochastic rounding only
// (measured at most 4.1e-4 relative over steps 2-3; bound 1e-2 as above).
TEST(LowBitStore, TiedHeadFp32SourceAndOneSided) {
  const fs::path model = testing::golden_dir() / "qwen3";
  auto arch = load_architecture(model);
  ASSERT_EQ(arch->tensors()[static_cast<size_t>(arch->head_weight_id())].block, 0);
  Checkpoint ckpt(model);
  RamStore source(*arch, ckpt);
  std::vector<std::vector<float>> values(arch->tensors().size());
  std::vector<const float*> ptrs;
  for (size_t i = 0; i < values.size(); ++i) {
    values[i].resize(static_cast<size_t>(arch->tensors()[i].numel()));
    source.read_tensor(static_cast<int>(i), values[i].data());
    ptrs.push_back(values[i].data());
  }
  testing::TempDir dir;
  double worst = 0;
  for (DType dt : {DType::BF16, DType::F16}) {
    const fs::path rounded = dir / std::string(dtype_name(dt));
    save_checkpoint(*arch, ptrs, dt, rounded);
    for (bool one_sided : {false, true}) {
      const auto low = run_engine(model, dt, 3, one_sided);
      const auto ref = run_engine(rounded, std::nullopt, 3, one_sided);
      const std::string where = std::string(dtype_name(dt)) + (one_sided ? " one-sided" : " two-sided");
      EXPECT_EQ(low.steps[0].loss_plus, ref.steps[0].loss_plus) << where;
      EXPECT_EQ(low.steps[0].loss_minus, ref.steps[0].loss_minus) << where;
      for (size_t t = 1; t < ref.steps.size(); ++t) {
        worst = std::max({worst, rel(low.steps[t].loss_plus, ref.steps[t].loss_plus),
                          rel(low.steps[t].loss_minus, ref.steps[t].loss_minus)});
        EXPECT_LE(rel(low.steps[t].loss_plus, ref.steps[t].loss_plus), 1e-2) << where << " step " << t + 1;
        EXPECT_LE(rel(low.steps[t].loss_minus, ref.steps[t].loss_minus), 1e-2) << where << " step " << t + 1;
      }
      if (one_sided) {
        EXPECT_NE(low.steps[1].loss_minus, low.steps[0].loss_minus) << where;  // L(θ) after θ moved
      }
    }
  }
  std::cout << "qwen3 tied, 16-bit stores vs RamStore on the rounded checkpoint: worst relative loss difference "
            << worst << "\n";
}

TEST(LowBitStore, LoadKeepsBf16BitsAndConvertsOthers) {
  const fs::path model = testing::golden_dir() / "qwen3_bf16";
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  LowBitRamStore store(*arch, ckpt, DType::BF16);
  EXPECT_EQ(store.storage_dtype(), DType::BF16);
  LowBitRamStore f16(*arch, ckpt, DType::F16);
  const auto& table = arch->tensors();
  for (size_t i = 0; i < table.size(); ++i) {
    // Reading the checkpoint again after the store dropped its pages.
    const TensorView v = ckpt.get(resolve_tensor_name(*arch, ckpt, table[i]));
    ASSERT_EQ(v.dtype, DType::BF16);
    const auto n = static_cast<size_t>(v.numel());
    ASSERT_EQ(0, std::memcmp(store.stored(static_cast<int>(i)), v.data, n * 2)) << table[i].name;
    std::vector<float> want(n), got(n);
    kernels::bf16_to_f32(static_cast<const uint16_t*>(v.data), want.data(), static_cast<int64_t>(n));
    store.read_tensor(static_cast<int>(i), got.data());
    ASSERT_EQ(first_diff(got, want), -1) << table[i].name;
    std::vector<uint16_t> want16(n);
    kernels::f32_to_f16(want.data(), want16.data(), static_cast<int64_t>(n));
    ASSERT_EQ(0, std::memcmp(f16.stored(static_cast<int>(i)), want16.data(), n * 2)) << table[i].name;
  }
  // Saved in the storage dtype and loaded again: the same bytes.
  testing::TempDir dir;
  std::vector<std::vector<float>> values(table.size());
  std::vector<const float*> ptrs;
  for (size_t i = 0; i < table.size(); ++i) {
    values[i].resize(static_cast<size_t>(table[i].numel()));
    store.read_tensor(static_cast<int>(i), values[i].data());
    ptrs.push_back(values[i].data());
  }
  save_checkpoint(*arch, ptrs, store.storage_dtype(), dir / "saved");
  Checkpoint saved(dir / "saved");
  for (size_t i = 0; i < table.size(); ++i) {
    const TensorView a = ckpt.get(resolve_tensor_name(*arch, ckpt, table[i])), b = saved.get(table[i].name);
    ASSERT_EQ(b.dtype, DType::BF16);
    ASSERT_EQ(0, std::memcmp(a.data, b.data, a.nbytes())) << table[i].name;
  }
  // A fp32 file is rounded to nearest even.
  const fs::path f32_model = testing::golden_dir() / "qwen3";
  auto arch32 = load_architecture(f32_model);
  Checkpoint ckpt32(f32_model);
  LowBitRamStore from32(*arch32, ckpt32, DType::BF16);
  for (size_t i = 0; i < arch32->tensors().size(); ++i) {
    const TensorView v = ckpt32.get(resolve_tensor_name(*arch32, ckpt32, arch32->tensors()[i]));
    std::vector<uint16_t> want(static_cast<size_t>(v.numel()));
    std::vector<float> src(want.size());
    std::memcpy(src.data(), v.data, v.nbytes());
    kernels::f32_to_bf16(src.data(), want.data(), v.numel());
    ASSERT_EQ(0, std::memcmp(from32.stored(static_cast<int>(i)), want.data(), want.size() * 2));
  }
}

TEST(LowBitStore, FactoryCountersAndWorkingCopies) {
  const fs::path model = testing::golden_dir() / "qwen3_bf16";
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  StoreOptions so;
  so.offload = Offload::Ram;
  so.storage_dtype = DType::BF16;
  auto store = make_store(*arch, ckpt, so);
  ASSERT_NE(dynamic_cast<LowBitRamStore*>(store.get()), nullptr);
  const auto P = static_cast<uint64_t>(store->total_params());
  BlockWork work;
  work.update = UpdateRecord(1, 7, 1e-3f, 0.5f);
  work.perturb = true;
  work.seed = 8;
  work.eps = 1e-3f;
  uint64_t block_params = 0;  // non-streamed: drawn and read once more for W-
  for (int b = 0; b < arch->num_blocks(); ++b) {
    BlockSession session = store->acquire(b, work);
    const ParamPtrs plus = session.copy(0);
    for (int id : store->block_tensors(b)) {
      const auto n = static_cast<size_t>(arch->tensors()[static_cast<size_t>(id)].numel());
      std::vector<float> w(n), z(n);
      store->read_tensor(id, w.data());
      kernels::zo_fill_z(8, static_cast<uint32_t>(id), ZDist::Gaussian, 0, static_cast<int64_t>(n), z.data());
      for (size_t k = 0; k < n; ++k) ASSERT_EQ(plus[static_cast<size_t>(id)][k], w[k] + 1e-3f * z[k]);
    }
    // Lean: the one fp32 copy becomes W- for the minus pass; W+ is gone then.
    const ParamPtrs minus = session.copy(1);
    EXPECT_THROW(session.copy(0), Error);
    for (int id : store->block_tensors(b)) {
      const auto n = static_cast<size_t>(arch->tensors()[static_cast<size_t>(id)].numel());
      std::vector<float> w(n), z(n);
      store->read_tensor(id, w.data());
      kernels::zo_fill_z(8, static_cast<uint32_t>(id), ZDist::Gaussian, 0, static_cast<int64_t>(n), z.data());
      for (size_t k = 0; k < n; ++k) ASSERT_EQ(minus[static_cast<size_t>(id)][k], w[k] - 1e-3f * z[k]);
      block_params += n;
    }
  }
  // Streamed tensors (embedding, head) come by chunks of rows, odd-sized here.
  std::vector<int> streamed;
  for (int id = 0; id < static_cast<int>(arch->tensors().size()); ++id)
    if (store->streamed(id)) streamed.push_back(id);
  ASSERT_FALSE(streamed.empty());
  for (int id : streamed) {
    const auto& spec = arch->tensors()[static_cast<size_t>(id)];
    const int64_t cols = spec.numel() / spec.shape[0];
    std::vector<float> w(static_cast<size_t>(spec.numel()));
    int64_t next_row = 0;
    store->stream_rows(id, work, 7, [&](const RowChunk& c) {
      ASSERT_EQ(c.row0, next_row);
      ASSERT_EQ(c.rows, std::min<int64_t>(7, spec.shape[0] - c.row0));
      next_row += c.rows;
      store->read_tensor(id, w.data());
      const int64_t n = c.rows * cols;
      std::vector<float> z(static_cast<size_t>(n));
      kernels::zo_fill_z(8, static_cast<uint32_t>(id), ZDist::Gaussian, c.row0 * cols, n, z.data());
      for (int64_t k = 0; k < n; ++k) {
        const float t = w[static_cast<size_t>(c.row0 * cols + k)];
        ASSERT_EQ(c.theta[k], t);
        ASSERT_EQ(c.plus[k], t + 1e-3f * z[static_cast<size_t>(k)]);
        ASSERT_EQ(c.minus[k], t - 1e-3f * z[static_cast<size_t>(k)]);
      }
    });
    EXPECT_EQ(next_row, spec.shape[0]);
  }
  const StoreCounters& c = store->counters();
  EXPECT_LT(block_params, P);
  EXPECT_EQ(c.param_bytes_read, 2 * (P + block_params));
  EXPECT_EQ(c.param_bytes_written, 2 * P);
  EXPECT_EQ(c.rng_draws, 2 * P + block_params);
  EXPECT_EQ(c.rounding_draws, P);
  // Unperturbed (eval): plus and minus are one fp32 copy of the stored values.
  BlockSession session = store->acquire(0, BlockWork{});
  const ParamPtrs plus = session.copy(0), minus = session.copy(1);
  for (int id : store->block_tensors(0)) {
    const auto n = static_cast<size_t>(arch->tensors()[static_cast<size_t>(id)].numel());
    std::vector<float> w(n);
    store->read_tensor(id, w.data());
    EXPECT_EQ(plus[static_cast<size_t>(id)], minus[static_cast<size_t>(id)]);
    EXPECT_EQ(0, std::memcmp(plus[static_cast<size_t>(id)], w.data(), n * sizeof(float)));
  }
}

}  // namespace
}  // namespace zotune
