// Building blocks shared by the architecture files: linear layers in both
// weight layouts, self-attention with or without a KV cache, lazily grown
// scratch. Architecture files compose these; they hold no architecture logic.
#pragma once
#include <cstdint>

#include "model/architecture.h"
#include "tensor/weight_ref.h"

namespace zotune::blocks {

// nn.Linear stores W as [out, in]; GPT-2's Conv1D stores it as [in, out].
using Layout = WeightLayout;

// y[rows, out] = x[rows, in] · W (+ bias), on the compute backend that
// handles (fp32, W.dtype) (kernels/gemm.h). ldx/ldy are row strides (0 = dense).
void linear(const float* x, int64_t rows, int64_t in, const WeightRef& W, int64_t out,
            const float* bias, float* y, int64_t ldx = 0, int64_t ldy = 0);
// The same for an fp32 weight in `layout`.
inline void linear(const float* x, int64_t rows, int64_t in, const float* W, int64_t out,
                   const float* bias, float* y, Layout layout, int64_t ldx = 0, int64_t ldy = 0) {
  linear(x, rows, in, WeightRef{W, DType::F32, layout}, out, bias, y, ldx, ldy);
}

// Grows `buf` to at least n floats (allocation happens once per shape class).
float* ensure(AlignedBuffer<float>& buf, int64_t n);

// Self-attention of the new tokens. q is [B*T, Hq*D] with row stride q_stride;
// k_new/v_new are [B*T, Hkv*D] with row stride kv_stride. Without a cache the new
// keys are the keys; with one they are appended at cache->length first.
// out: [B*T, Hq*D] dense. Scratch for the kernel comes from a.scratch tail
// (`attn_scratch`, sized by the caller via attention_scratch()).
struct AttentionArgs {
  const ModelConfig* cfg;
  const ForwardInput* in;
  KVCache* cache;  // may be null
  int64_t layer;
  float scale;
};
void self_attention(const AttentionArgs& args, const float* q, int64_t q_stride, const float* k_new,
                    const float* v_new, int64_t kv_stride, float* out, AlignedBuffer<float>& scratch);

// The HF generate() convention for position ids: the number of real tokens
// before each token; padded tokens get 1.
void positions_from_mask(const uint8_t* mask, int64_t B, int64_t T, int64_t* positions);

// Copies embedding rows for ids; ids outside [0, V) are an error naming the id.
void gather_rows(const float* table, int64_t V, int64_t C, const int32_t* ids, int64_t n, float* out);

}  // namespace zotune::blocks
