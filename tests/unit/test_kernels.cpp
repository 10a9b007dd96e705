// Every kernel against its scalar reference (kernels/reference.h) on random
// inputs of odd sizes, once per ISA target available on this machine.
//
// Tolerances (the reference works in double; inputs are O(1) unless stated):
//   add/bias/relu/scale, casts          bit-exact
//   sgemm                               |err| <= K * 2^-24 * sum_k |a_ik b_kj| (+ beta term)
//   gelu_tanh, gelu_erf, silu_mul       |err| <= 1e-6 |ref| + 1e-30 (x in [-12, 12] and edges;
//                                       measured worst ~2e-7, 4e-7, 2e-7 above the fp32 underflow)
//   softmax                             |err| <= 1e-6 |ref| + 1e-9
//   logsumexp                           |err| <= 1e-6 (1 + |ref|)
//   layer_norm, rms_norm                |err| <= 1e-5 |ref| + 1e-5
//   rope                                |err| <= 1e-6 (|x_i| + |x_{i+d/2}|) + 1e-7
//   attention                           |err| <= 1e-5 max|v|
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/threads.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace zotune::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> uniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Largest |got - want| / (rtol |want| + atol), reported with its index.
struct Worst {
  double ratio = 0;
  size_t at = 0;
};

Worst worst_error(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                  double atol) {
  Worst w;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double r = err / (rtol * std::fabs(want[i]) + atol);
    if (!(r <= w.ratio)) {  // NaN counts as worst
      w.ratio = std::isnan(r) ? 1e300 : r;
      w.at = i;
    }
  }
  return w;
}

#define EXPECT_CLOSE(got, want, rtol, atol)                                              \
  do {                                                                                   \
    const Worst w_ = worst_error(got, want, rtol, atol);                                 \
    EXPECT_LE(w_.ratio, 1.0) << "worst at " << w_.at << ": got " << (got)[w_.at]         \
                             << " want " << (want)[w_.at];                               \
  } while (0)

const std::vector<int64_t> kSizes = {1, 3, 17, 63, 64, 1000, 4099};

class Kernels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    force_isa(GetParam());
    ASSERT_EQ(std::string(isa_name()), GetParam());
  }
  void TearDown() override { force_isa("native"); }
};

// ---- sgemm

TEST_P(Kernels, SgemmMatchesReferenceWithinSummationBound) {
  struct Case { int64_t M, N, K; bool ta, tb; float alpha, beta; };
  const Case cases[] = {{1, 1, 1, false, false, 1, 0},    {3, 17, 63, false, true, 1, 0},
                        {17, 3, 5, true, false, 0.5f, 1}, {63, 65, 257, true, true, -1, 0.25f},
                        {64, 48, 768, false, true, 1, 0}, {5, 7, 1, false, false, 2, -1}};
  for (const Case& c : cases) {
    // Leading dimensions larger than needed, to catch mixed-up strides.
    const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 2, ldc = c.N + 1;
    const auto A = uniform(static_cast<size_t>((c.ta ? c.K : c.M) * lda), -1, 1, 1);
    const auto B = uniform(static_cast<size_t>((c.tb ? c.N : c.K) * ldb), -1, 1, 2);
    auto C0 = uniform(static_cast<size_t>(c.M * ldc), -1, 1, 3);
    if (c.beta == 0) std::fill(C0.begin(), C0.end(), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> got = C0, want = C0;
    sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, got.data(), ldc);
    ref::sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta,
               want.data(), ldc);
    for (int64_t i = 0; i < c.M; ++i) {
      for (int64_t j = 0; j < c.N; ++j) {
        double abs_sum = 0;
        for (int64_t p = 0; p < c.K; ++p) {
          const float a = c.ta ? A[p * lda + i] : A[i * lda + p];
          const float b = c.tb ? B[j * ldb + p] : B[p * ldb + j];
          abs_sum += std::fabs(static_cast<double>(a) * b);
        }
        const double cterm = c.beta == 0 ? 0.0 : std::fabs(c.beta * C0[i * ldc + j]);
        const double bound = (c.K + 2) * 0x1p-24 * (std::fabs(c.alpha) * abs_sum + cterm) + 1e-30;
        ASSERT_LE(std::fabs(got[i * ldc + j] - want[i * ldc + j]), bound)
            << "M=" << c.M << " N=" << c.N << " K=" << c.K << " at " << i << "," << j;
      }
    }
  }
}

// C is cut into tiles by shape alone (kernels/blas_tiles.h): 1, 2 and 3
// threads give the same bits. OpenBLAS's own threading does not (0.3.21 on
// AVX-512 differs in ~3 % of C for 128 x 192 x 64), which made ZO runs depend
// on --threads; these shapes are a tiny model's GEMMs on a 4 x 32 batch, a
// streamed head chunk, and odd sizes with strides over several tiles.
TEST(KernelsThreads, SgemmIsBitIdenticalForAnyThreadCount) {
  struct Case { int64_t M, N, K; bool ta, tb; float beta; };
  const Case cases[] = {{128, 192, 64, false, false, 0},  {128, 64, 256, false, false, 0},
                        {124, 8192, 64, false, true, 0},   {300, 517, 129, true, true, 0.5f},
                        {517, 300, 129, false, true, 0}, {512, 768, 768, false, false, 0}};
  const int before = compute_threads();
  for (const Case& c : cases) {
    const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 2, ldc = c.N + 1;
    const auto A = uniform(static_cast<size_t>((c.ta ? c.K : c.M) * lda), -1, 1, 1);
    const auto B = uniform(static_cast<size_t>((c.tb ? c.N : c.K) * ldb), -1, 1, 2);
    const auto C0 = uniform(static_cast<size_t>(c.M * ldc), -1, 1, 3);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      set_compute_threads(threads);
      std::vector<float> C = C0;
      sgemm(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
      if (threads == 1) first = C;
      else
        EXPECT_EQ(0, std::memcmp(C.data(), first.data(), C.size() * sizeof(float)))
            << "M=" << c.M << " N=" << c.N << " K=" << c.K << ", " << threads << " threads";
    }
    // And still the product: against the reference within the summation bound.
    std::vector<float> want = C0;
    ref::sgemm(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, c.beta, want.data(), ldc);
    double worst = 0;
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) worst = std::max(worst, std::fabs(double(first[i * ldc + j]) - want[i * ldc + j]));
    EXPECT_LE(worst, (c.K + 2) * 0x1p-24 * c.K) << "M=" << c.M << " N=" << c.N << " K=" << c.K;
  }
  set_compute_threads(before);
}

TEST_P(Kernels, SgemmHandlesZeroSizes) {
  std::vector<float> C = {1, 2, 3, 4};
  const float A[1] = {5}, B[1] = {7};
  sgemm(false, false, 0, 2, 3, 1, A, 3, B, 2, 0, C.data(), 2);  // nothing to do
  sgemm(false, false, 2, 0, 3, 1, A, 3, B, 0, 0, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{1, 2, 3, 4}));
  sgemm(false, false, 2, 2, 0, 1, A, 1, B, 2, 0.5f, C.data(), 2);  // K = 0: C = beta C
  EXPECT_EQ(C, (std::vector<float>{0.5f, 1, 1.5f, 2}));
  std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
  sgemm(false, false, 2, 2, 0, 1, A, 1, B, 2, 0, C.data(), 2);  // beta = 0 ignores NaN in C
  EXPECT_EQ(C, (std::vector<float>{0, 0, 0, 0}));
  EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1, A, 1, B, 2, 0, C.data(), 2), Error);  // lda < K
}

// ---- elementwise

TEST_P(Kernels, StreamingOpsAreExact) {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{1000}, int64_t{300001}}) {
    const auto x = uniform(static_cast<size_t>(n), -2, 2, 4);
    const auto y0 = uniform(static_cast<size_t>(n), -2, 2, 5);
    auto got = y0, want = y0;
    add_inplace(got.data(), x.data(), n);
    ref::add_inplace(want.data(), x.data(), n);
    EXPECT_EQ(got, want) << "add n=" << n;
    got = x, want = x;
    relu_inplace(got.data(), n);
    ref::relu_inplace(want.data(), n);
    EXPECT_EQ(got, want) << "relu n=" << n;
    got = x, want = x;
    scale_inplace(got.data(), 0.37f, n);
    ref::scale_inplace(want.data(), 0.37f, n);
    EXPECT_EQ(got, want) << "scale n=" << n;
  }
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {63, 5}, {300, 1000}}) {
    const auto bias = uniform(static_cast<size_t>(cols), -1, 1, 6);
    auto got = uniform(static_cast<size_t>(rows * cols), -1, 1, 7), want = got;
    add_bias_rows(got.data(), bias.data(), rows, cols);
    ref::add_bias_rows(want.data(), bias.data(), rows, cols);
    EXPECT_EQ(got, want) << "bias " << rows << "x" << cols;
  }
}

// Random values in [-12, 12] plus the edges of each formula: zero, tiny,
// the far tails where exp under/overflows, and huge values.
std::vector<float> activation_inputs(int64_t n, uint32_t seed) {
  auto x = uniform(static_cast<size_t>(n), -12, 12, seed);
  const float edges[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 3.0f, -3.0f, 5.5f, -5.5f,
                         9.0f, -9.0f, 20.0f, -20.0f, 60.0f, -60.0f, 1e4f, -1e4f, 3e38f, -3e38f};
  for (size_t i = 0; i < std::size(edges) && i < x.size(); ++i) x[i] = edges[i];
  return x;
}

TEST_P(Kernels, ActivationsMatchReference) {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{63}, int64_t{4099}, int64_t{200003}}) {
    const auto x = activation_inputs(n, 8);
    auto got = x, want = x;
    gelu_tanh_inplace(got.data(), n);
    ref::gelu_tanh_inplace(want.data(), n);
    EXPECT_CLOSE(got, want, 1e-6, 1e-30);
    got = x, want = x;
    gelu_erf_inplace(got.data(), n);
    ref::gelu_erf_inplace(want.data(), n);
    EXPECT_CLOSE(got, want, 1e-6, 1e-30);
    const auto up = uniform(static_cast<size_t>(n), -3, 3, 9);
    got = x, want.assign(x.size(), 0.0f);
    silu_mul(got.data(), up.data(), got.data(), n);  // out aliases gate
    ref::silu_mul(x.data(), up.data(), want.data(), n);
    EXPECT_CLOSE(got, want, 1e-6, 1e-30);
  }
}

// ---- row kernels

TEST_P(Kernels, NormsMatchReference) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 63}, {7, 768}, {33, 1000}}) {
    // An offset of 100 checks that the variance does not cancel.
    auto x = uniform(static_cast<size_t>(rows * cols), 99, 101, 10);
    const auto gamma = uniform(static_cast<size_t>(cols), 0.5f, 1.5f, 11);
    const auto beta = uniform(static_cast<size_t>(cols), -1, 1, 12);
    for (const float* b : {beta.data(), static_cast<const float*>(nullptr)}) {
      std::vector<float> got(x.size()), want(x.size());
      layer_norm(x.data(), gamma.data(), b, got.data(), rows, cols, 1e-5f);
      ref::layer_norm(x.data(), gamma.data(), b, want.data(), rows, cols, 1e-5f);
      EXPECT_CLOSE(got, want, 1e-5, 1e-5);
    }
    auto inplace = x;  // y aliases x
    std::vector<float> want(x.size());
    layer_norm(inplace.data(), gamma.data(), beta.data(), inplace.data(), rows, cols, 1e-5f);
    ref::layer_norm(x.data(), gamma.data(), beta.data(), want.data(), rows, cols, 1e-5f);
    EXPECT_CLOSE(inplace, want, 1e-5, 1e-5);

    x = uniform(static_cast<size_t>(rows * cols), -3, 3, 13);
    std::vector<float> got(x.size());
    rms_norm(x.data(), gamma.data(), got.data(), rows, cols, 1e-6f);
    ref::rms_norm(x.data(), gamma.data(), want.data(), rows, cols, 1e-6f);
    EXPECT_CLOSE(got, want, 1e-5, 1e-5);
  }
}

TEST_P(Kernels, SoftmaxMatchesReference) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 63}, {64, 128}, {3, 4099}}) {
    auto x = uniform(static_cast<size_t>(rows * cols), -20, 20, 14);
    if (cols > 2) x[1] = -kInf;  // a masked logit
    auto got = x, want = x;
    softmax_rows(got.data(), rows, cols);
    ref::softmax_rows(want.data(), rows, cols);
    EXPECT_CLOSE(got, want, 1e-6, 1e-9);
  }
}

TEST_P(Kernels, LogSumExpMatchesReference) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 63}, {9, 4099}, {3, 50257}}) {
    auto x = uniform(static_cast<size_t>(rows * cols), -30, 30, 15);
    if (cols > 1) x[0] = -kInf;  // a masked logit
    if (cols > 3000) x[cols + 2500] = 80.0f;  // the max arrives late in row 1: rescaling
    std::vector<float> got(static_cast<size_t>(rows)), want(got.size());
    logsumexp_rows(x.data(), rows, cols, got.data());
    ref::logsumexp_rows(x.data(), rows, cols, want.data());
    for (size_t r = 0; r < got.size(); ++r)
      EXPECT_NEAR(got[r], want[r], 1e-6 * (1 + std::fabs(want[r]))) << rows << "x" << cols << " row " << r;
  }
  std::vector<float> all_masked(5, -kInf);
  float lse = 0;
  logsumexp_rows(all_masked.data(), 1, 5, &lse);
  EXPECT_EQ(lse, -kInf);
}

// ---- rope

TEST_P(Kernels, RopeMatchesReference) {
  for (int64_t head_dim : {2, 6, 34, 64, 128}) {
    const int64_t rows = 13, heads = 3, stride = heads * head_dim + 5;
    std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
    for (int64_t i = 0; i < head_dim / 2; ++i)
      inv_freq[i] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / head_dim);
    std::vector<int64_t> pos(rows);
    std::mt19937 rng(16);
    for (auto& p : pos) p = std::uniform_int_distribution<int64_t>(0, 8191)(rng);
    pos[0] = 0;
    const auto x = uniform(static_cast<size_t>(rows * stride), -2, 2, 17);
    auto got = x, want = x;
    rope_inplace(got.data(), rows, stride, heads, head_dim, pos.data(), inv_freq.data());
    ref::rope_inplace(want.data(), rows, stride, heads, head_dim, pos.data(), inv_freq.data());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < stride; ++c) {
        const size_t i = static_cast<size_t>(r * stride + c);
        if (c >= heads * head_dim) {
          EXPECT_EQ(got[i], x[i]) << "padding between rows was written";
          continue;
        }
        const int64_t h = c / head_dim, k = c % head_dim, half = head_dim / 2;
        const size_t base = static_cast<size_t>(r * stride + h * head_dim);
        const double scale = std::fabs(x[base + k % half]) + std::fabs(x[base + k % half + half]);
        ASSERT_NEAR(got[i], want[i], 1e-6 * scale + 1e-7) << "head_dim " << head_dim << " row " << r << " col " << c;
      }
    }
  }
}

// ---- attention

struct AttnCase {
  int64_t B, Tq, Tk, Hq, Hkv, D, q_offset;
  int mask;  // 0 none, 1 left padding, 2 right padding, 3 random, 4 one batch fully padded
  int64_t extra_stride;  // added to q/kv/out strides
};

void check_attention(const AttnCase& c) {
  AttentionShape s{};
  s.B = c.B, s.Tq = c.Tq, s.Tk = c.Tk, s.Hq = c.Hq, s.Hkv = c.Hkv, s.D = c.D;
  s.q_stride = c.Hq * c.D + c.extra_stride;
  s.kv_stride = c.Hkv * c.D + c.extra_stride;
  s.out_stride = c.Hq * c.D + c.extra_stride;
  s.q_offset = c.q_offset;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  const auto q = uniform(static_cast<size_t>(c.B * c.Tq * s.q_stride), -2, 2, 18);
  const auto k = uniform(static_cast<size_t>(c.B * c.Tk * s.kv_stride), -2, 2, 19);
  const auto v = uniform(static_cast<size_t>(c.B * c.Tk * s.kv_stride), -1, 1, 20);
  std::vector<uint8_t> valid(static_cast<size_t>(c.B * c.Tk), 1);
  std::mt19937 rng(21);
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t pad = static_cast<int64_t>(rng() % static_cast<uint32_t>(c.Tk / 2 + 1));
    for (int64_t j = 0; j < c.Tk; ++j) {
      uint8_t& m = valid[static_cast<size_t>(b * c.Tk + j)];
      if (c.mask == 1) m = j >= pad;
      if (c.mask == 2) m = j < c.Tk - pad;
      if (c.mask == 3) m = rng() % 3 != 0;
      if (c.mask == 4) m = b != c.B - 1;
    }
  }
  const uint8_t* vp = c.mask == 0 ? nullptr : valid.data();
  const float sentinel = 1234.5f;
  std::vector<float> got(static_cast<size_t>(c.B * c.Tq * s.out_stride), sentinel), want = got;
  std::vector<float> scratch(static_cast<size_t>(attention_scratch_floats(s, 1)));
  attention(s, q.data(), k.data(), v.data(), vp, got.data(), scratch.data());
  ref::attention(s, q.data(), k.data(), v.data(), vp, want.data(), nullptr);
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t col = static_cast<int64_t>(i) % s.out_stride;
    if (col >= c.Hq * c.D) {
      ASSERT_EQ(got[i], sentinel) << "wrote outside the heads at " << i;
      continue;
    }
    ASSERT_NEAR(got[i], want[i], 1e-5)
        << "B=" << c.B << " Tq=" << c.Tq << " Tk=" << c.Tk << " Hq=" << c.Hq << " Hkv=" << c.Hkv
        << " D=" << c.D << " off=" << c.q_offset << " mask=" << c.mask << " at " << i;
  }
  if (c.mask == 4) {  // the fully padded batch gets zeros
    for (int64_t i = 0; i < c.Tq; ++i)
      for (int64_t d = 0; d < c.Hq * c.D; ++d)
        ASSERT_EQ(got[static_cast<size_t>(((c.B - 1) * c.Tq + i) * s.out_stride + d)], 0.0f);
  }
}

TEST_P(Kernels, AttentionMatchesReference) {
  const AttnCase cases[] = {
      {1, 1, 1, 1, 1, 1, 0, 0, 0},        // smallest
      {2, 17, 17, 4, 2, 3, 0, 1, 0},      // GQA, odd head_dim, left padding
      {2, 40, 40, 6, 3, 16, 0, 2, 7},     // two query blocks, right padding, strided
      {3, 8, 8, 2, 1, 17, 0, 3, 0},       // block path at its smallest, random mask
      {3, 7, 7, 2, 2, 17, 0, 3, 0},       // row path
      {2, 33, 33, 2, 2, 64, 0, 4, 0},     // fully padded batch -> zeros
      {4, 128, 128, 12, 12, 64, 0, 1, 0}, // GPT-2 full forward
      {2, 1, 100, 4, 1, 64, 99, 1, 0},    // decode, GQA 4:1
      {2, 1, 2048, 12, 12, 64, 2047, 3, 0},  // decode at a long cache
      {1, 20, 50, 4, 2, 32, 10, 0, 0},    // chunk of queries, keys past the chunk invisible
      {1, 9, 9, 1, 1, 80, 0, 0, 3},       // head_dim 80: 4-vector chunks plus single vectors
      {1, 12, 30, 3, 1, 5, 18, 3, 1},     // q_offset > 0 with block path and odd D
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST_P(Kernels, AttentionQueryWithoutVisibleKeyGetsZeros) {
  // Key 0 is padding: query 0 (which may only see key 0) has no valid key.
  for (int64_t Tq : {int64_t{3}, int64_t{12}}) {
    AttentionShape s{1, Tq, Tq, 1, 1, 4, 4, 4, 4, 0, 0.5f};
    const auto q = uniform(static_cast<size_t>(Tq * 4), -1, 1, 22);
    const auto kv = uniform(static_cast<size_t>(Tq * 4), -1, 1, 23);
    std::vector<uint8_t> valid(static_cast<size_t>(Tq), 1);
    valid[0] = 0;
    std::vector<float> out(static_cast<size_t>(Tq * 4), 7.0f);
    std::vector<float> scratch(static_cast<size_t>(attention_scratch_floats(s, 1)));
    attention(s, q.data(), kv.data(), kv.data(), valid.data(), out.data(), scratch.data());
    for (int d = 0; d < 4; ++d) EXPECT_EQ(out[d], 0.0f);
    // Query 1 sees only key 1: its output is v[1].
    for (int d = 0; d < 4; ++d) EXPECT_NEAR(out[4 + d], kv[4 + d], 1e-6);
  }
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// A query's output has the same bits whatever the number of queries in the
// call: a sequence alone (Tq = its length, so queries of a block of fewer than
// 8 take the row path), inside a right-padded batch of a longer one (the block
// path), and its last queries decoded after a cache of the others (q_offset).
// Data-parallel ranks rely on it: each pads its slice to its own longest.
TEST_P(Kernels, AttentionOfASequenceDoesNotDependOnThePadding) {
  for (int64_t D : {int64_t{16}, int64_t{17}, int64_t{64}}) {
    const int64_t Hq = 4, Hkv = 2, T = 48, stride = Hq * D, kv_stride = Hkv * D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    // Batch of 2: sequence 0 fills all T, sequence 1 has n real tokens.
    const auto q = uniform(static_cast<size_t>(2 * T * stride), -2, 2, 31);
    const auto k = uniform(static_cast<size_t>(2 * T * kv_stride), -2, 2, 32);
    const auto v = uniform(static_cast<size_t>(2 * T * kv_stride), -1, 1, 33);
    for (int64_t n : {1, 3, 7, 8, 20, 33, 35, 39}) {
      std::vector<uint8_t> valid(static_cast<size_t>(2 * T), 1);
      std::fill(valid.begin() + T + n, valid.end(), uint8_t{0});
      const AttentionShape batch{2, T, T, Hq, Hkv, D, stride, kv_stride, stride, 0, scale};
      std::vector<float> in_batch(static_cast<size_t>(2 * T * stride));
      std::vector<float> scratch(static_cast<size_t>(attention_scratch_floats(batch, 1)));
      attention(batch, q.data(), k.data(), v.data(), valid.data(), in_batch.data(), scratch.data());
      const float* q1 = q.data() + T * stride;
      const float* k1 = k.data() + T * kv_stride;
      const float* v1 = v.data() + T * kv_stride;
      const float* want = in_batch.data() + T * stride;  // sequence 1's rows
      const AttentionShape one{1, n, n, Hq, Hkv, D, stride, kv_stride, stride, 0, scale};
      std::vector<float> alone(static_cast<size_t>(n * stride));
      attention(one, q1, k1, v1, nullptr, alone.data(), scratch.data());
      for (int64_t i = 0; i < n * stride; ++i)
        ASSERT_EQ(bits(alone[static_cast<size_t>(i)]), bits(want[i]))
            << "D=" << D << " length " << n << ": query " << i / stride << " alone vs padded";
      // The last r queries against the keys of all n (as decoding with a cache does).
      for (int64_t r : {int64_t{1}, int64_t{2}}) {
        if (r > n) continue;
        const AttentionShape tail{1, r, n, Hq, Hkv, D, stride, kv_stride, stride, n - r, scale};
        std::vector<float> got(static_cast<size_t>(r * stride));
        attention(tail, q1 + (n - r) * stride, k1, v1, nullptr, got.data(), scratch.data());
        for (int64_t i = 0; i < r * stride; ++i)
          ASSERT_EQ(bits(got[static_cast<size_t>(i)]), bits(want[(n - r) * stride + i]))
              << "D=" << D << " length " << n << ": query " << n - r + i / stride << " decoded vs padded";
      }
    }
  }
}

// ---- casts

TEST_P(Kernels, WideningCastsAreExactForAll16BitPatterns) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> got(all.size()), want(all.size());
  bf16_to_f32(all.data(), got.data(), 65536);
  ref::bf16_to_f32(all.data(), want.data(), 65536);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << "bf16 " << i;
  f16_to_f32(all.data(), got.data(), 65536);
  ref::f16_to_f32(all.data(), want.data(), 65536);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << "f16 " << i;
  // Odd lengths go through the tail path.
  for (int64_t n : kSizes) {
    std::vector<float> part(static_cast<size_t>(n));
    f16_to_f32(all.data() + 0x7BF0 - n / 2, part.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(part[i]), bits(want[0x7BF0 - n / 2 + i]));
  }
}

// For every 16-bit pattern: its value, the midpoints to both neighbours, one
// float ulp either side of them, and random floats across all exponents.
std::vector<float> narrowing_inputs(bool bf16) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> value(all.size());
  if (bf16)
    ref::bf16_to_f32(all.data(), value.data(), 65536);
  else
    ref::f16_to_f32(all.data(), value.data(), 65536);
  std::vector<float> in;
  for (uint32_t i = 0; i < 65535; ++i) {
    if (std::isnan(value[i]) || std::isnan(value[i + 1]) || std::isinf(value[i])) continue;
    const double a = value[i], b = std::isinf(value[i + 1]) ? 2.0 * a - value[i - 1] : value[i + 1];
    const float mid = static_cast<float>((a + b) / 2);  // exact in float for both formats
    in.insert(in.end(), {value[i], mid, std::nextafter(mid, -kInf), std::nextafter(mid, kInf)});
  }
  std::mt19937 rng(24);
  for (int i = 0; i < (1 << 20); ++i) in.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  in.insert(in.end(), {kInf, -kInf, 0.0f, -0.0f, std::numeric_limits<float>::max(),
                       std::numeric_limits<float>::denorm_min(), 65504.0f, 65519.996f, 65520.0f,
                       std::bit_cast<float>(0x7F800001u), std::bit_cast<float>(0xFFC01234u)});
  return in;
}

TEST_P(Kernels, NarrowingCastsRoundToNearestEven) {
  for (bool bf16 : {true, false}) {
    const auto in = narrowing_inputs(bf16);
    const auto n = static_cast<int64_t>(in.size());
    std::vector<uint16_t> got(in.size()), want(in.size());
    (bf16 ? f32_to_bf16 : f32_to_f16)(in.data(), got.data(), n);
    (bf16 ? ref::f32_to_bf16 : ref::f32_to_f16)(in.data(), want.data(), n);
    for (size_t i = 0; i < in.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << (bf16 ? "bf16" : "f16") << " of float bits 0x" << std::hex << bits(in[i]);
    for (int64_t m : kSizes) {  // tails
      std::vector<uint16_t> part(static_cast<size_t>(m));
      (bf16 ? f32_to_bf16 : f32_to_f16)(in.data() + 5, part.data(), m);
      for (int64_t i = 0; i < m; ++i) ASSERT_EQ(part[i], want[5 + i]);
    }
  }
}

TEST(KernelsReference, GeluTanhIsTheTanhFormula) {
  // The reference evaluates gelu_new as x * sigmoid(2u); check it against the
  // literal formula where that does not cancel.
  std::vector<float> x = uniform(1000, -6, 6, 25);
  std::vector<float> got = x;
  ref::gelu_tanh_inplace(got.data(), static_cast<int64_t>(got.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double u = std::sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v);
    EXPECT_NEAR(got[i], 0.5 * v * (1.0 + std::tanh(u)), 1e-6 * std::fabs(got[i]) + 1e-12);
  }
}

TEST(KernelsReference, NarrowingReferenceKnownValues) {
  // Independent spot checks of the reference itself.
  const float in[] = {1.0f, 1.00390625f /* bf16 tie, even down */, 1.01171875f /* tie, up */,
                      65520.0f, 65519.0f, 5.9604645e-8f /* 2^-24 */, 2.9802322e-8f /* tie to 0 */,
                      -0.0f, std::numeric_limits<float>::max()};
  uint16_t b[std::size(in)], h[std::size(in)];
  ref::f32_to_bf16(in, b, std::size(in));
  ref::f32_to_f16(in, h, std::size(in));
  EXPECT_EQ(b[0], 0x3F80);
  EXPECT_EQ(b[1], 0x3F80);
  EXPECT_EQ(b[2], 0x3F82);
  EXPECT_EQ(b[8], 0x7F80);  // FLT_MAX rounds up to Inf in bf16
  EXPECT_EQ(h[0], 0x3C00);
  EXPECT_EQ(h[3], 0x7C00);
  EXPECT_EQ(h[4], 0x7BFF);
  EXPECT_EQ(h[5], 0x0001);
  EXPECT_EQ(h[6], 0x0000);
  EXPECT_EQ(h[7], 0x8000);
}

// ---- ISA selection

TEST(KernelsIsa, UnknownOrUnavailableNamesThrow) {
  EXPECT_THROW(force_isa("avx9000"), Error);
  const auto isas = available_isas();
  ASSERT_FALSE(isas.empty());
  // The fallback is EMU128 or, with GCC < 12.3, SCALAR.
  EXPECT_TRUE(isas.back() == "EMU128" || isas.back() == "SCALAR") << isas.back();
  force_isa("scalar");
  EXPECT_EQ(std::string(isa_name()), isas.back());
  force_isa("native");
  EXPECT_EQ(std::string(isa_name()), isas.front());
}

// EnvForcesTargetAtStartup runs this binary again with ZOTUNE_ISA set. The
// child does its check here, before gtest starts, and exits with 0 if
// isa_name() is ZOTUNE_TEST_EXPECT_ISA (or throws when that is "error").
const int child_mode = [] {
  const char* expect = std::getenv("ZOTUNE_TEST_EXPECT_ISA");
  if (expect == nullptr) return 0;
  int rc = 0;
  try {
    rc = std::string(isa_name()) == expect ? 0 : 1;
  } catch (const Error&) {
    rc = std::string(expect) == "error" ? 0 : 2;
  }
  std::_Exit(rc);
}();

int run_child(const std::string& isa, const std::string& expect) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = "ZOTUNE_ISA=" + isa + " ZOTUNE_TEST_EXPECT_ISA=" + expect + " '" + self +
                          "' > /dev/null 2>&1";
  return std::system(cmd.c_str());
}

TEST(KernelsIsa, EnvForcesTargetAtStartup) {
  EXPECT_EQ(run_child("scalar", available_isas().back()), 0);
  EXPECT_EQ(run_child("bogus", "error"), 0);
  EXPECT_NE(run_child("scalar", "AVX-512"), 0);  // the child can fail
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Isa, Kernels, ::testing::ValuesIn(available_isas()), param_name);

}  // namespace
}  // namespace zotune::kernels
