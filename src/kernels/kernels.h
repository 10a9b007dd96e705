// Kernels: pure functions on pointers. fp32 compute. They know nothing about
// models, tensors or tiers. Every function here has a scalar reference in
// kernels/reference.h with the same signature and a randomized test against it
// (tests/unit/test_kernels.cpp) with a stated tolerance.
//
// Vectorized bodies are compiled once per ISA with Highway and chosen at start-up
// (HWY_DYNAMIC_DISPATCH). ZOTUNE_ISA=scalar|avx2|avx512|... forces a target
// (see isa_name()). Elementwise/row kernels parallelize over rows with OpenMP.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zotune::kernels {

// Name of the ISA target in use ("AVX3", "AVX2", "EMU128", ...).
const char* isa_name();
// Targets compiled in and supported by this CPU, best first (Highway names).
std::vector<std::string> available_isas();
// Forces a target for all later calls, as ZOTUNE_ISA does at start-up:
// native|avx512|avx2|sse4|scalar (or a Highway name from available_isas()).
// "native" restores the best. Throws zotune::Error if unknown or unavailable.
// Not to be called while kernels run on other threads.
void force_isa(std::string_view name);

// ---- GEMM (OpenBLAS). Row-major.
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// trans_b = true means B is stored [N,K] (the PyTorch nn.Linear weight layout).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

// ---- Normalizations (rows x cols, row-major, contiguous rows; y may alias x).
// LayerNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta   (beta may be null)
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t cols, float eps);
// RMSNorm as in HF Llama/Qwen3: y = w * (x / sqrt(mean(x^2) + eps))
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t cols, float eps);

// ---- Elementwise (in place unless stated).
void add_inplace(float* y, const float* x, int64_t n);                        // y += x
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols);  // y[r,:] += bias
void relu_inplace(float* x, int64_t n);
// GPT-2 "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void gelu_tanh_inplace(float* x, int64_t n);
// Exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (OPT "gelu", Qwen/Llama do not use it)
void gelu_erf_inplace(float* x, int64_t n);
// out = silu(gate) * up ; silu(x) = x / (1 + exp(-x)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void scale_inplace(float* x, float s, int64_t n);

// ---- Softmax over each row, in place.
void softmax_rows(float* x, int64_t rows, int64_t cols);

// ---- Rotary position embedding (HF "rotate_half" convention), in place.
// x: `rows` vectors, each of `heads` heads of size head_dim, at x + r*row_stride + h*head_dim.
// positions[r] is the position of row r. inv_freq has head_dim/2 entries.
// For i < head_dim/2: (x_i, x_{i+d/2}) <- (x_i c - x_{i+d/2} s, x_{i+d/2} c + x_i s),
// c = cos(pos * inv_freq[i]), s = sin(pos * inv_freq[i]) (angles computed in fp32 as HF does).
void rope_inplace(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_dim,
                  const int64_t* positions, const float* inv_freq);

// ---- Attention (causal, with key padding mask, GQA).
// Queries: q + (b*Tq + i)*q_stride + h*D, h < Hq.     Keys/values: k|v + (b*Tk + j)*kv_stride + g*D,
// g < Hkv, group g = h / (Hq/Hkv). Query i sits at key index q_offset + i; it attends key j iff
// j <= q_offset + i and key_valid[b*Tk + j] != 0 (key_valid may be null: all valid).
// out + (b*Tq + i)*out_stride + h*D receives softmax(q k^T * scale) v. A query with no valid key
// gets zeros. `scratch` must hold at least scratch_floats(...) floats.
struct AttentionShape {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  int64_t q_stride, kv_stride, out_stride;
  int64_t q_offset;
  float scale;
};
// `threads`: the OpenMP threads that will run attention(); the result also
// covers omp_get_max_threads() at the time of this call, which attention() uses.
// One scratch buffer must not be shared by concurrent attention() calls.
int64_t attention_scratch_floats(const AttentionShape& s, int threads);
void attention(const AttentionShape& s, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, float* scratch);

// ---- Cross-entropy pieces.
// For each row r of logits [rows, V]: lse[r] = log(sum exp(logits[r,:])).
void logsumexp_rows(const float* logits, int64_t rows, int64_t V, float* lse);

// ---- Storage casts (round to nearest even; NaN stays NaN).
void bf16_to_f32(const uint16_t* in, float* out, int64_t n);
void f16_to_f32(const uint16_t* in, float* out, int64_t n);
void f32_to_bf16(const float* in, uint16_t* out, int64_t n);
void f32_to_f16(const float* in, uint16_t* out, int64_t n);

}  // namespace zotune::kernels
