#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

namespace zotune::kernels::ref {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Rounds |x| (finite, non-negative) to a binary format with `mant_bits` stored
// mantissa bits, exponent bias `bias` and all-ones exponent reserved for Inf/NaN.
// Returns the magnitude bits of the result (Inf when it rounds past the largest
// finite value). Works in double, where every step here is exact except the
// final rounding, which nearbyint does to nearest even.
uint32_t round_magnitude(double a, int mant_bits, int bias) {
  const int min_exp = 1 - bias;          // exponent of the smallest normal
  const int max_biased = 2 * bias + 1;   // all-ones exponent (Inf/NaN)
  const uint32_t inf = static_cast<uint32_t>(max_biased) << mant_bits;
  if (a < std::ldexp(1.0, min_exp)) {
    // Subnormal range: a multiple of the smallest subnormal. Rounding up to
    // 2^mant_bits units yields the smallest normal, whose encoding is the same.
    return static_cast<uint32_t>(std::nearbyint(std::ldexp(a, mant_bits - min_exp)));
  }
  int e;
  double frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  e -= 1;                           // a = (2 frac) * 2^e, 2 frac in [1, 2)
  double m = std::nearbyint((2 * frac - 1) * std::ldexp(1.0, mant_bits));
  if (m == std::ldexp(1.0, mant_bits)) {
    m = 0;
    e += 1;
  }
  const int biased = e + bias;
  if (biased >= max_biased) return inf;
  return (static_cast<uint32_t>(biased) << mant_bits) | static_cast<uint32_t>(m);
}

// 0.5 x (1 + tanh(u)), evaluated as x / (1 + exp(-2u)) (the same function):
// 1 + tanh(u) cancels to 0 in double for u < -19 while the value does not.
double gelu_tanh_value(double x) {
  const double u = std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < K; ++p) {
        const double a = trans_a ? A[p * lda + i] : A[i * lda + p];
        const double b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
        acc += a * b;
      }
      // As in BLAS, beta == 0 means C is write-only (it may hold NaN).
      const double c = beta == 0.0f ? 0.0 : static_cast<double>(beta) * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(alpha * acc + c);
    }
  }
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double mean = 0;
    for (int64_t c = 0; c < cols; ++c) mean += xr[c];
    mean /= static_cast<double>(cols);
    double var = 0;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(cols);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < cols; ++c) {
      const double b = beta ? beta[c] : 0.0;
      yr[c] = static_cast<float>((xr[c] - mean) * inv * gamma[c] + b);
    }
  }
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
    for (int64_t c = 0; c < cols; ++c) yr[c] = static_cast<float>(w[c] * (xr[c] * inv));
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += bias[c];
}

void relu_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void gelu_tanh_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(gelu_tanh_value(x[i]));
}

void gelu_erf_inplace(float* x, int64_t n) {
  // 0.5 (1 + erf(x/sqrt2)) written as 0.5 erfc(-x/sqrt2), which keeps its
  // relative accuracy for very negative x where 1 + erf cancels.
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(v * 0.5 * std::erfc(-v / std::sqrt(2.0)));
  }
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void scale_inplace(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, static_cast<double>(xr[c]));
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - m);
    for (int64_t c = 0; c < cols; ++c) xr[c] = static_cast<float>(std::exp(xr[c] - m) / sum);
  }
}

void rope_inplace(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_dim,
                  const int64_t* positions, const float* inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + r * row_stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        // The angle is an fp32 product, as in HF; cos/sin of it are then exact
        // to fp32 rounding.
        const float angle = static_cast<float>(positions[r]) * inv_freq[i];
        const double c = static_cast<float>(std::cos(static_cast<double>(angle)));
        const double s = static_cast<float>(std::sin(static_cast<double>(angle)));
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * c - b * s);
        v[i + half] = static_cast<float>(b * c + a * s);
      }
    }
  }
}

void attention(const AttentionShape& s, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, float* /*scratch*/) {
  const int64_t group = s.Hq / s.Hkv;
  std::vector<double> score(static_cast<size_t>(s.Tk));
  std::vector<double> acc(static_cast<size_t>(s.D));
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.Hq; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < s.Tq; ++i) {
        const float* qi = q + (b * s.Tq + i) * s.q_stride + h * s.D;
        double m = -std::numeric_limits<double>::infinity();
        bool any = false;
        for (int64_t j = 0; j < s.Tk; ++j) {
          const bool visible =
              j <= s.q_offset + i && (key_valid == nullptr || key_valid[b * s.Tk + j] != 0);
          if (!visible) continue;
          const float* kj = k + (b * s.Tk + j) * s.kv_stride + g * s.D;
          double dot = 0;
          for (int64_t d = 0; d < s.D; ++d) dot += static_cast<double>(qi[d]) * kj[d];
          score[j] = dot * s.scale;
          m = std::max(m, score[j]);
          any = true;
        }
        float* oi = out + (b * s.Tq + i) * s.out_stride + h * s.D;
        if (!any) {
          for (int64_t d = 0; d < s.D; ++d) oi[d] = 0.0f;
          continue;
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < s.Tk; ++j) {
          const bool visible =
              j <= s.q_offset + i && (key_valid == nullptr || key_valid[b * s.Tk + j] != 0);
          if (!visible) continue;
          const double p = std::exp(score[j] - m);
          sum += p;
          const float* vj = v + (b * s.Tk + j) * s.kv_stride + g * s.D;
          for (int64_t d = 0; d < s.D; ++d) acc[d] += p * vj[d];
        }
        for (int64_t d = 0; d < s.D; ++d) oi[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
}

void logsumexp_rows(const float* logits, int64_t rows, int64_t V, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = logits + r * V;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < V; ++c) m = std::max(m, static_cast<double>(xr[c]));
    if (m == -std::numeric_limits<double>::infinity()) {  // empty or all -inf: log(0)
      lse[r] = -std::numeric_limits<float>::infinity();
      continue;
    }
    double sum = 0;
    for (int64_t c = 0; c < V; ++c) sum += std::exp(xr[c] - m);
    lse[r] = static_cast<float>(m + std::log(sum));
  }
}

void bf16_to_f32(const uint16_t* in, float* out, int64_t n) {
  // bf16 is the upper half of an fp32; every pattern (NaN payloads included)
  // maps to exactly one fp32.
  for (int64_t i = 0; i < n; ++i) out[i] = float_of(static_cast<uint32_t>(in[i]) << 16);
}

void f16_to_f32(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t h = in[i];
    const bool negative = (h & 0x8000u) != 0;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    const uint32_t mant = h & 0x3FFu;
    float f;
    if (exp == 0x1F) {
      // Inf, or NaN with its payload kept and the quiet bit set (what F16C does).
      f = float_of(0x7F800000u | (mant != 0 ? 0x400000u | (mant << 13) : 0u));
    } else if (exp == 0) {
      f = static_cast<float>(std::ldexp(static_cast<double>(mant), -24));
    } else {
      f = static_cast<float>(std::ldexp(1.0 + mant / 1024.0, static_cast<int>(exp) - 15));
    }
    out[i] = negative ? -f : f;
  }
}

void f32_to_bf16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = bits_of(in[i]);
    const uint32_t sign = (u >> 16) & 0x8000u;
    if (std::isnan(in[i])) {
      out[i] = static_cast<uint16_t>((u >> 16) | 0x40u);  // keep payload, force quiet
      continue;
    }
    const double a = std::fabs(static_cast<double>(in[i]));
    const uint32_t mag = std::isinf(in[i]) ? 0x7F80u : round_magnitude(a, 7, 127);
    out[i] = static_cast<uint16_t>(sign | mag);
  }
}

void f32_to_f16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = bits_of(in[i]);
    const uint32_t sign = (u >> 16) & 0x8000u;
    if (std::isnan(in[i])) {
      out[i] = static_cast<uint16_t>(sign | 0x7E00u | ((u & 0x7FFFFFu) >> 13));
      continue;
    }
    const double a = std::fabs(static_cast<double>(in[i]));
    const uint32_t mag = std::isinf(in[i]) ? 0x7C00u : round_magnitude(a, 10, 15);
    out[i] = static_cast<uint16_t>(sign | mag);
  }
}

}  // namespace zotune::kernels::ref
