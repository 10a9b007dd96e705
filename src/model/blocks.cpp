#include "model/blocks.h"

#include <omp.h>

#include <cstring>

#include "base/error.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zotune::blocks {

void linear(const float* x, int64_t rows, int64_t in, const WeightRef& W, int64_t out,
            const float* bias, float* y, int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = in;
  if (ldy == 0) ldy = out;
  kernels::matmul({x, DType::F32, rows, in, out, ldx, ldy, W, y});
  if (bias) {
    if (ldy == out) {
      kernels::add_bias_rows(y, bias, rows, out);
    } else {
      for (int64_t r = 0; r < rows; ++r) kernels::add_inplace(y + r * ldy, bias, out);
    }
  }
}

float* ensure(AlignedBuffer<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.reset(static_cast<std::size_t>(n));
  return buf.data();
}

void self_attention(const AttentionArgs& args, const float* q, int64_t q_stride, const float* k_new,
                    const float* v_new, int64_t kv_stride, float* out, AlignedBuffer<float>& scratch) {
  const ModelConfig& c = *args.cfg;
  const ForwardInput& in = *args.in;
  kernels::AttentionShape s{};
  s.B = in.B;
  s.Tq = in.T;
  s.Hq = c.num_heads;
  s.Hkv = c.num_kv_heads;
  s.D = c.head_dim;
  s.q_stride = q_stride;
  s.out_stride = c.num_heads * c.head_dim;
  s.scale = args.scale;
  const float* k = k_new;
  const float* v = v_new;
  if (args.cache) {
    KVCache& kc = *args.cache;
    const int64_t kvd = c.kv_dim();
    check(kc.length + in.T <= kc.capacity, "KV cache full: ", kc.length, " + ", in.T,
          " tokens exceed its capacity of ", kc.capacity);
    float* kd = kc.keys(args.layer);
    float* vd = kc.values(args.layer);
    for (int64_t b = 0; b < in.B; ++b)
      for (int64_t t = 0; t < in.T; ++t) {
        const int64_t src = (b * in.T + t) * kv_stride;
        const int64_t dst = (b * kc.capacity + kc.length + t) * kvd;
        std::memcpy(kd + dst, k_new + src, sizeof(float) * kvd);
        std::memcpy(vd + dst, v_new + src, sizeof(float) * kvd);
      }
    k = kd;
    v = vd;
    s.Tk = kc.capacity;
    s.kv_stride = kvd;
    s.q_offset = kc.length;
  } else {
    s.Tk = in.T;
    s.kv_stride = kv_stride;
    s.q_offset = 0;
  }
  float* sc = ensure(scratch, kernels::attention_scratch_floats(s, omp_get_max_threads()));
  kernels::attention(s, q, k, v, in.key_valid, out, sc);
}

void positions_from_mask(const uint8_t* mask, int64_t B, int64_t T, int64_t* positions) {
  for (int64_t b = 0; b < B; ++b) {
    int64_t seen = 0;
    for (int64_t t = 0; t < T; ++t) {
      const bool real = !mask || mask[b * T + t];
      positions[b * T + t] = real ? seen : 1;
      if (real) ++seen;
    }
  }
}

void gather_rows(const float* table, int64_t V, int64_t C, const int32_t* ids, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= V) fail("token id ", id, " is outside the vocabulary [0, ", V, ")");
    std::memcpy(out + i * C, table + static_cast<int64_t>(id) * C, sizeof(float) * C);
  }
}

}  // namespace zotune::blocks
