// The fused zo kernels against the double-precision reference written from the
// layout text (kernels/zo_reference.h), across ISA targets, thread counts and
// sub-ranges, plus the statistics z must have.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <numbers>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/philox.h"
#include "kernels/kernels.h"
#include "kernels/zo_kernels.h"
#include "kernels/zo_reference.h"

namespace zotune::kernels {
namespace {

constexpr ZDist kDists[] = {ZDist::Gaussian, ZDist::Rademacher, ZDist::Ones};

std::vector<float> fill_z(uint64_t seed, uint32_t tensor, ZDist dist, int64_t begin, int64_t n) {
  std::vector<float> z(static_cast<size_t>(n));
  zo_fill_z(seed, tensor, dist, begin, n, z.data());
  return z;
}

std::vector<double> ref_z(uint64_t seed, uint32_t tensor, ZDist dist, int64_t begin, int64_t n) {
  std::vector<double> z(static_cast<size_t>(n));
  ref::zo_fill_z(seed, tensor, dist, begin, n, z.data());
  return z;
}

// Index of the first bitwise difference, or -1.
int64_t first_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  return -1;
}

double mean(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += v;
  return s / static_cast<double>(x.size());
}

double correlation(const std::vector<float>& a, const std::vector<float>& b) {
  const double ma = mean(a), mb = mean(b);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// Restores the default ISA and thread count when a test ends (or fails).
struct ExecutionGuard {
  int threads = omp_get_max_threads();
  ~ExecutionGuard() {
    force_isa("native");
    omp_set_num_threads(threads);
  }
};

TEST(ZoKernels, PhiloxKnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from Salmon et al. (Random123), so the
  // reference's generator is itself checked independently.
  using W = std::array<uint32_t, 4>;
  EXPECT_EQ(Philox4x32::block({0, 0, 0, 0}, {0, 0}),
            (W{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(Philox4x32::block({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}),
            (W{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(Philox4x32::block({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                              {0xa4093822u, 0x299f31d0u}),
            (W{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(ZoKernels, GaussianMatchesDoubleReference) {
  struct Case {
    uint64_t seed;
    uint32_t tensor;
    int64_t begin, n;
  };
  // The last case starts past 2^36 elements, where the counter's high word c1 is non-zero.
  const Case cases[] = {{0, 0, 0, 1 << 20},
                        {0x0123456789abcdefULL, 7, 1000, 500000},
                        {~0ULL, 0xffffffffu, 3, 300001},
                        {42, 3, (int64_t{1} << 38) + 5, 100000}};
  double max_err = 0, max_abs_z = 0;
  for (const Case& c : cases) {
    const auto z = fill_z(c.seed, c.tensor, ZDist::Gaussian, c.begin, c.n);
    const auto want = ref_z(c.seed, c.tensor, ZDist::Gaussian, c.begin, c.n);
    for (size_t i = 0; i < z.size(); ++i) {
      const double err = std::abs(z[i] - want[i]);
      ASSERT_LT(err, 2e-6) << "seed " << c.seed << " element " << c.begin + int64_t(i) << ": "
                           << z[i] << " vs " << want[i];
      max_err = std::max(max_err, err);
      max_abs_z = std::max(max_abs_z, std::abs(want[i]));
    }
  }
  // Box-Muller with 24-bit u1 >= 2^-24 cannot exceed sqrt(48 ln 2) = 5.77.
  EXPECT_LT(max_abs_z, 5.77);
  EXPECT_GT(max_abs_z, 4.5);
  std::cout << "max |z - z_double| = " << max_err << " (max |z| " << max_abs_z << ")\n";
  RecordProperty("max_abs_error", std::to_string(max_err));
}

TEST(ZoKernels, BoxMullerOverEveryU1AndU2) {
  // One sweep in which u1 and u2 each take all 2^24 values: m2 = m1 * odd mod 2^24
  // is a bijection. The low 8 bits of the words must not matter.
  const int64_t kAll = int64_t{1} << 24, kChunk = int64_t{1} << 20;
  std::vector<uint32_t> wa(kChunk), wb(kChunk);
  std::vector<float> zc(kChunk), zs(kChunk);
  double max_err = 0, max_abs_z = 0;
  for (int64_t c0 = 0; c0 < kAll; c0 += kChunk) {
    for (int64_t j = 0; j < kChunk; ++j) {
      const uint32_t m1 = static_cast<uint32_t>(c0 + j);
      const uint32_t m2 = (m1 * 0x9E3779B1u) & 0xFFFFFFu;
      wa[j] = (m1 << 8) | (m2 & 0xFFu);
      wb[j] = (m2 << 8) | (m1 & 0xFFu);
    }
    detail::zo_gaussian_from_words(wa.data(), wb.data(), kChunk, zc.data(), zs.data());
    for (int64_t j = 0; j < kChunk; ++j) {
      const double u1 = (static_cast<double>(wa[j] >> 8) + 1.0) / 16777216.0;
      const double u2 = static_cast<double>(wb[j] >> 8) / 16777216.0;
      const double rad = std::sqrt(-2.0 * std::log(u1));
      const double c = rad * std::cos(2.0 * std::numbers::pi * u2);
      const double s = rad * std::sin(2.0 * std::numbers::pi * u2);
      const double err = std::max(std::abs(zc[j] - c), std::abs(zs[j] - s));
      ASSERT_LT(err, 2e-6) << "u1 " << u1 << " u2 " << u2 << ": " << zc[j] << " " << zs[j] << " vs "
                           << c << " " << s;
      max_err = std::max(max_err, err);
      max_abs_z = std::max({max_abs_z, std::abs(c), std::abs(s)});
    }
  }
  std::cout << "every u1, u2: max |z - z_double| = " << max_err << " (max |z| " << max_abs_z
            << ")\n";
  RecordProperty("max_abs_error_exhaustive", std::to_string(max_err));
}

TEST(ZoKernels, RademacherOnesAndUniformAreExact) {
  for (ZDist dist : {ZDist::Rademacher, ZDist::Ones}) {
    const auto z = fill_z(99, 5, dist, 17, 70001);
    const auto want = ref_z(99, 5, dist, 17, 70001);
    for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(double{z[i]}, want[i]) << "element " << i;
  }
  std::vector<float> u(70001), want(70001);
  zo_fill_uniform(99, 5, 17, 70001, u.data());
  ref::zo_fill_uniform(99, 5, 17, 70001, want.data());
  EXPECT_EQ(first_diff(u, want), -1);
  EXPECT_GE(*std::min_element(u.begin(), u.end()), 0.0f);
  EXPECT_LT(*std::max_element(u.begin(), u.end()), 1.0f);
}

// Everything the kernels write for one set of inputs, to compare bitwise.
std::vector<float> kernel_outputs(int64_t begin, int64_t n) {
  std::vector<float> all;
  for (ZDist dist : kDists) {
    const auto z = fill_z(0xfeedULL, 11, dist, begin, n);
    all.insert(all.end(), z.begin(), z.end());
  }
  std::vector<float> u(static_cast<size_t>(n));
  zo_fill_uniform(0xfeedULL, 11, begin, n, u.data());
  all.insert(all.end(), u.begin(), u.end());
  std::vector<float> w(static_cast<size_t>(n)), plus(w.size()), minus(w.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(i % 97) - 0.3f;
  const ZoUpdate upd{true, 0xbeefULL, 1e-3f, 0.37f, 0.01f};
  const ZoPerturb pert{true, 0xfeedULL, 1e-3f};
  zo_update_perturb(11, ZDist::Gaussian, upd, pert, begin, n, w.data(), plus.data(), minus.data());
  for (const auto* v : {&w, &plus, &minus}) all.insert(all.end(), v->begin(), v->end());
  return all;
}

TEST(ZoKernels, BitwiseEqualOnEveryIsaTarget) {
  ExecutionGuard guard;
  const int64_t begin = 37, n = 100003;  // unaligned ends; large enough to use threads
  std::vector<float> first;
  std::string first_name;
  std::set<std::string> exercised;
  for (const std::string& isa : available_isas()) {
    force_isa(isa);
    ASSERT_EQ(std::string(isa_name()), isa);
    const auto out = kernel_outputs(begin, n);
    exercised.insert(isa);
    if (first.empty()) {
      first = out;
      first_name = isa;
      continue;
    }
    EXPECT_EQ(first_diff(out, first), -1) << isa << " differs from " << first_name;
  }
  std::string names;
  for (const auto& s : exercised) names += s + " ";
  std::cout << "targets compared: " << names << "\n";
  EXPECT_GE(exercised.size(), 2u);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    EXPECT_TRUE(exercised.count("AVX3")) << names;
    EXPECT_TRUE(exercised.count("AVX2")) << names;
  }
}

TEST(ZoKernels, BitwiseEqualForOneAndTwoThreads) {
  ExecutionGuard guard;
  omp_set_num_threads(1);
  const auto one = kernel_outputs(13, 300001);
  omp_set_num_threads(2);
  const auto two = kernel_outputs(13, 300001);
  EXPECT_EQ(first_diff(one, two), -1);
}

TEST(ZoKernels, SubRangeEqualsSliceOfFullTensor) {
  std::mt19937_64 rng(1);
  for (ZDist dist : kDists) {
    const int64_t N = 5000;
    const auto full = fill_z(77, 2, dist, 0, N);
    for (int t = 0; t < 300; ++t) {
      const int64_t begin = static_cast<int64_t>(rng() % N);
      const int64_t n = static_cast<int64_t>(rng() % (N - begin + 1));
      const auto part = fill_z(77, 2, dist, begin, n);
      const std::vector<float> slice(full.begin() + begin, full.begin() + begin + n);
      ASSERT_EQ(first_diff(part, slice), -1) << "begin " << begin << " n " << n;
    }
  }
  // A range long enough to be split between threads, starting mid-group.
  const auto full = fill_z(77, 2, ZDist::Gaussian, 0, 300000);
  const auto part = fill_z(77, 2, ZDist::Gaussian, 12345, 250001);
  EXPECT_EQ(first_diff(part, std::vector<float>(full.begin() + 12345, full.begin() + 262346)), -1);
}

TEST(ZoKernels, GaussianStatistics) {
  const int64_t n = 1 << 20;
  const auto z = fill_z(2024, 1, ZDist::Gaussian, 0, n);
  double s1 = 0, s2 = 0;
  int64_t tail = 0, inner = 0;
  for (float v : z) {
    s1 += v;
    s2 += double{v} * v;
    tail += std::abs(v) > 3.0f;
    inner += std::abs(v) < 1.0f;
  }
  const double m = s1 / n, var = s2 / n - m * m;
  EXPECT_LT(std::abs(m), 0.01);
  EXPECT_NEAR(var, 1.0, 0.01);
  // P(|z| > 3) = 0.0026998 (standard error over 2^20 draws: 5e-5).
  EXPECT_NEAR(static_cast<double>(tail) / n, 0.0027, 0.0004);
  EXPECT_NEAR(static_cast<double>(inner) / n, 0.6827, 0.003);

  // Neighbouring elements (same block, same lane in the next group, next lane)
  // must not be correlated: a layout bug that reuses words would show here.
  for (int64_t lag : {1, 16, 32, 64}) {
    const std::vector<float> a(z.begin(), z.end() - lag), b(z.begin() + lag, z.end());
    EXPECT_LT(std::abs(correlation(a, b)), 0.01) << "lag " << lag;
  }
  // Different seeds and tensor ids give unrelated streams.
  EXPECT_LT(std::abs(correlation(z, fill_z(2025, 1, ZDist::Gaussian, 0, n))), 0.01);
  EXPECT_LT(std::abs(correlation(z, fill_z(2024, 2, ZDist::Gaussian, 0, n))), 0.01);
}

TEST(ZoKernels, RademacherStatisticsAndStreams) {
  const int64_t n = 1 << 20;
  const auto z = fill_z(7, 3, ZDist::Rademacher, 0, n);
  int64_t plus = 0;
  for (float v : z) {
    ASSERT_TRUE(v == 1.0f || v == -1.0f);
    plus += v > 0;
  }
  EXPECT_NEAR(static_cast<double>(plus) / n, 0.5, 0.005);
  EXPECT_LT(std::abs(correlation(z, fill_z(8, 3, ZDist::Rademacher, 0, n))), 0.01);
  EXPECT_LT(std::abs(correlation(z, fill_z(7, 4, ZDist::Rademacher, 0, n))), 0.01);
  // Perturbation and Rounding streams of the same seed and tensor: Rademacher
  // uses a word's top bit, the uniform its top 24 bits, so a shared stream
  // would correlate them at about 0.87.
  std::vector<float> u(static_cast<size_t>(n));
  zo_fill_uniform(7, 3, 0, n, u.data());
  EXPECT_LT(std::abs(correlation(z, u)), 0.01);
}

TEST(ZoKernels, UpdatePerturbMatchesScalarLoop) {
  struct Range {
    int64_t begin, n;
  };
  const Range ranges[] = {{0, 1}, {5, 63}, {64, 64}, {3, 1000}, {61, 70001}, {128, 131072}};
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const uint32_t tensor = 9;
  int checked = 0;
  for (ZDist dist : kDists)
    for (int combo = 0; combo < 4; ++combo)
      for (float wd : {0.0f, 0.1f})
        for (const Range& r : ranges) {
          const ZoUpdate upd{(combo & 1) != 0, 1000 + static_cast<uint64_t>(combo), 2e-2f, -0.77f,
                             wd};
          const ZoPerturb pert{(combo & 2) != 0, 2000 + static_cast<uint64_t>(combo), 1e-3f};
          const size_t n = static_cast<size_t>(r.n);
          std::vector<float> w(n), plus(n, -7.0f), minus(n, -7.0f);
          for (float& v : w) v = normal(rng);
          w[0] = 3.5f;  // a large weight, where the decay term dominates
          auto want_w = w, want_plus = plus, want_minus = minus;
          const auto z_prev = fill_z(upd.seed, tensor, dist, r.begin, r.n);
          const auto z = fill_z(pert.seed, tensor, dist, r.begin, r.n);
          // With no perturbation, plus/minus may be null; minus also with one
          // (one-sided estimators), and then stays untouched.
          const bool null_plus = !pert.active && r.n % 2 == 1;
          const bool null_minus = null_plus || (r.n % 2 == 1 && wd > 0);
          ref::zo_update_perturb(upd, pert, r.n, z_prev.data(), z.data(), want_w.data(),
                                 want_plus.data(), null_minus ? nullptr : want_minus.data());
          zo_update_perturb(tensor, dist, upd, pert, r.begin, r.n, w.data(),
                            null_plus ? nullptr : plus.data(), null_minus ? nullptr : minus.data());
          const std::string where = "dist " + std::to_string(int(dist)) + " combo " +
                                    std::to_string(combo) + " wd " + std::to_string(wd) +
                                    " begin " + std::to_string(r.begin) + " n " +
                                    std::to_string(r.n);
          ASSERT_EQ(first_diff(w, want_w), -1) << where;
          ASSERT_EQ(first_diff(plus, want_plus), -1) << where;  // -7 kept if inactive
          ASSERT_EQ(first_diff(minus, want_minus), -1) << where;
          ++checked;
        }
  EXPECT_EQ(checked, 3 * 4 * 2 * 6);
}

TEST(ZoKernels, UpdatePerturbKnownValues) {
  const int64_t n = 1000;
  std::vector<float> w(n), plus(n), minus(n);
  for (int64_t i = 0; i < n; ++i) w[i] = 0.001f * static_cast<float>(i) - 0.5f;
  const auto w0 = w;
  const float eps = 1e-3f, lr = 0.01f, g = 2.5f;

  // Ones: z = 1, so plus/minus are w +- eps exactly.
  zo_update_perturb(0, ZDist::Ones, ZoUpdate{}, ZoPerturb{true, 1, eps}, 7, n, w.data(),
                    plus.data(), minus.data());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(w[i], w0[i]);  // no update: weights only read
    ASSERT_EQ(plus[i], w0[i] + eps);
    ASSERT_EQ(minus[i], w0[i] - eps);
  }
  // Ones, no decay: w - lr * (g * 1 + 0 * w) = w - lr * g.
  const float step = lr * g;
  zo_update_perturb(0, ZDist::Ones, ZoUpdate{true, 1, lr, g, 0.0f}, ZoPerturb{}, 7, n, w.data(),
                    nullptr, nullptr);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(w[i], w0[i] - step);

  // Rademacher: plus - w = +-eps exactly, and the sign follows z.
  w = w0;
  const auto z = fill_z(5, 0, ZDist::Rademacher, 0, n);
  zo_update_perturb(0, ZDist::Rademacher, ZoUpdate{}, ZoPerturb{true, 5, eps}, 0, n, w.data(),
                    plus.data(), minus.data());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(plus[i], z[i] > 0 ? w0[i] + eps : w0[i] - eps);
    ASSERT_EQ(minus[i], z[i] > 0 ? w0[i] - eps : w0[i] + eps);
  }

  // The update undoes nothing by itself: lr = 0 leaves the weights as they were.
  zo_update_perturb(0, ZDist::Gaussian, ZoUpdate{true, 3, 0.0f, g, 0.1f}, ZoPerturb{}, 0, n,
                    w.data(), nullptr, nullptr);
  EXPECT_EQ(first_diff(w, w0), -1);
}

TEST(ZoKernels, BadArgumentsThrow) {
  float x = 0;
  EXPECT_THROW(zo_fill_z(1, 0, ZDist::Gaussian, -1, 1, &x), Error);
  EXPECT_THROW(zo_fill_z(1, 0, ZDist::Gaussian, 0, -1, &x), Error);
  EXPECT_THROW(zo_update_perturb(0, ZDist::Gaussian, ZoUpdate{}, ZoPerturb{true, 1, 1e-3f}, 0, 1,
                                 &x, nullptr, &x),
               Error);
  EXPECT_NO_THROW(zo_fill_z(1, 0, ZDist::Gaussian, 0, 0, nullptr));
}

}  // namespace
}  // namespace zotune::kernels
