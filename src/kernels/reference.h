// Scalar references for every kernel in kernels.h, written for clarity rather
// than speed: one loop nest per formula, double accumulation, libm in double.
// tests/unit/test_kernels.cpp compares the optimized kernels against these.
#pragma once
#include "kernels/kernels.h"

namespace zotune::kernels::ref {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t cols, float eps);
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t cols, float eps);

void add_inplace(float* y, const float* x, int64_t n);
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols);
void relu_inplace(float* x, int64_t n);
void gelu_tanh_inplace(float* x, int64_t n);
void gelu_erf_inplace(float* x, int64_t n);
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void scale_inplace(float* x, float s, int64_t n);

void softmax_rows(float* x, int64_t rows, int64_t cols);

void rope_inplace(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_dim,
                  const int64_t* positions, const float* inv_freq);

// Needs no scratch; the parameter keeps the signature of kernels::attention.
void attention(const AttentionShape& s, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, float* scratch);

void logsumexp_rows(const float* logits, int64_t rows, int64_t V, float* lse);

void bf16_to_f32(const uint16_t* in, float* out, int64_t n);
void f16_to_f32(const uint16_t* in, float* out, int64_t n);
void f32_to_bf16(const float* in, uint16_t* out, int64_t n);
void f32_to_f16(const float* in, uint16_t* out, int64_t n);

}  // namespace zotune::kernels::ref
