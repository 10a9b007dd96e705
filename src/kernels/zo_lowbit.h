// The fused ZO pass for parameters stored as 16-bit floats (the low-bit RAM
// tier): upcast, deferred update in fp32, stochastic rounding back to storage,
// and the fp32 working copies of this step — one pass, each random value drawn
// once. z uses the layout of zo_kernels.h; the rounding noise is the Uniform
// of its Rounding stream keyed by the update's seed (same 16-lane layout), so a
// run is bit-reproducible on every ISA target and thread count.
//
// Stochastic rounding of an fp32 value w (magnitude a = |w|, sign kept):
//   lo = a truncated to the format (the neighbour towards zero), ulp = the
//   format's spacing at lo, frac = (a - lo) / ulp in [0, 1) (exact in fp32);
//   the result is lo + ulp (away from zero) if u < frac, else lo, with u the
//   element's Rounding-stream uniform (w_r >> 8) / 2^24. So P(up) = frac and
//   E[round(w)] = w; representable values (frac = 0) stay exact.
//   bf16: frac is a multiple of 2^-16, so P(up) is exactly frac everywhere.
//   f16: frac is a multiple of 2^-24 down to |w| >= 2^-25; below that (values
//   under half the smallest subnormal) P(up) exceeds frac by < 2^-24.
//   Overflow: past the largest finite value the next neighbour is Inf (bf16:
//   2^128, f16: 65536), reached with probability frac as for any neighbour;
//   |w| >= 65536 gives f16 Inf (bf16 has fp32's range). RNE would round values
//   past max + ulp/2 to Inf instead. Inf stays Inf, NaN stays NaN (quiet).
#pragma once
#include <cstdint>

#include "kernels/zo_kernels.h"

namespace zotune::kernels {

enum class LowBitFormat : uint8_t { BF16, F16 };

// For elements [begin, begin + n) of tensor `tensor_id` (pointers offset to `begin`):
//   w = upcast(stored[i]);
//   if (upd.active) { w = w - upd.lr * (upd.grad * z_prev + upd.weight_decay * w);
//                     stored[i] = round_stochastic(w, u); w = upcast(stored[i]); }
//   if (pert.active) { plus[i] = w + pert.eps * z; minus[i] = w - pert.eps * z; }
//   out_w[i] = w;
// in fp32 in that order without FMA contraction (the arithmetic of
// zo_update_perturb). z_prev and u are keyed by upd.seed, z by pert.seed.
// plus is required when pert.active; minus and out_w may be null (not written).
void zo_lowbit_update_perturb(uint32_t tensor_id, LowBitFormat fmt, ZDist dist, const ZoUpdate& upd,
                              const ZoPerturb& pert, int64_t begin, int64_t n, uint16_t* stored,
                              float* plus, float* minus, float* out_w);

// Stochastic rounding alone: out[i] = round_stochastic(in[i], u) with u of the
// Rounding stream of `seed` for element begin + i of tensor `tensor_id`.
void zo_round_stochastic(uint32_t tensor_id, LowBitFormat fmt, uint64_t seed, int64_t begin,
                         int64_t n, const float* in, uint16_t* out);

namespace ref {

// Scalar references written from the text above, in double where convenient:
// they share no code with the SIMD kernels.
float lowbit_to_f32(LowBitFormat fmt, uint16_t h);
uint16_t round_stochastic(LowBitFormat fmt, float w, float u);

// zo_lowbit_update_perturb element by element, given z_prev (read if
// upd.active), z (if pert.active) and the uniforms u (if upd.active) of the
// same elements; minus and out_w may be null.
void zo_lowbit_update_perturb(LowBitFormat fmt, const ZoUpdate& upd, const ZoPerturb& pert,
                              int64_t n, const float* z_prev, const float* z, const float* u,
                              uint16_t* stored, float* plus, float* minus, float* out_w);

}  // namespace ref

}  // namespace zotune::kernels
