// The kernels that fuse a ZO step's parameter work: regenerate z from the
// counter RNG, apply the deferred update of the previous step, and write the
// two perturbed working copies — in one pass over the parameters.
//
// Random stream layout (Philox4x32-7, i.e. Philox4x32::block<kZoPhiloxRounds> of
// src/base/philox.h; 7 rounds pass BigCrush and cut the step's RNG cost by ~30%):
//   key     = (seed & 0xffffffff, seed >> 32)            seed: the step's seed
//   counter = (c0, c1, tensor_id, stream)                  stream: ZoStream
//   Element i of a tensor belongs to group G = i / 64, word r = (i % 64) / 16,
//   lane k = i % 16; its counter block is n = G * 16 + k, c0 = n & 0xffffffff,
//   c1 = n >> 32. One Philox call on block n yields words w0..w3 used by the four
//   elements G*64 + r*16 + k, r = 0..3 (a layout 16 SIMD lanes wide, fixed for
//   every ISA so z does not depend on the machine's vector width).
//   Gaussian: u1 = (w0 >> 8) + 1) / 2^24 in (0, 1], u2 = (w1 >> 8) / 2^24 in [0, 1)
//     rad = sqrt(-2 ln u1); r = 0 -> rad * cos(2 pi u2), r = 1 -> rad * sin(2 pi u2);
//     r = 2, 3 likewise from (w2, w3).
//   Rademacher: element (r) is +1 if bit 31 of w_r is 1, else -1.
//   Ones: z = 1 (ZO2's debug mode), no RNG.
//   Uniform (stochastic rounding noise): u = (w_r >> 8) / 2^24 in [0, 1).
#pragma once
#include <cstdint>

namespace zotune::kernels {

inline constexpr int kZoPhiloxRounds = 7;

enum class ZDist : uint8_t { Gaussian, Rademacher, Ones };
enum class ZoStream : uint32_t { Perturbation = 0, Rounding = 1 };

// Writes z for elements [begin, begin + n) of tensor `tensor_id` into out[0..n).
void zo_fill_z(uint64_t seed, uint32_t tensor_id, ZDist dist, int64_t begin, int64_t n, float* out);

// Writes the Uniform noise of the Rounding stream (stochastic rounding at
// write-back) for elements [begin, begin + n) of tensor `tensor_id` into out[0..n).
void zo_fill_uniform(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n, float* out);

struct ZoUpdate {       // the deferred update of the previous step: w -= lr * (g * z + wd * w)
  bool active = false;
  uint64_t seed = 0;    // the previous step's seed
  float lr = 0;         // learning rate of that step
  float grad = 0;       // its projected gradient g
  float weight_decay = 0;  // 0 for tensors that do not decay
};
struct ZoPerturb {      // this step's perturbation: plus = w + eps*z, minus = w - eps*z
  bool active = false;
  uint64_t seed = 0;
  float eps = 0;
};

// For elements [begin, begin + n) of tensor `tensor_id` (pointers already offset to `begin`):
//   w = weights[i]; if (upd.active) { w = w - upd.lr * (upd.grad * z_prev + upd.weight_decay * w); weights[i] = w; }
//   if (pert.active) { plus[i] = w + pert.eps * z; minus[i] = w - pert.eps * z; }
// z_prev and z are drawn with `dist` from seeds upd.seed and pert.seed. One pass,
// each z drawn once. Parallel over chunks (OpenMP) with results independent of the
// thread count. The update is computed in fp32 exactly as written (no FMA
// contraction differences between targets: the same expression order everywhere).
// plus and minus may be null when !pert.active; minus alone may be null when it is
// not wanted (one-sided estimators), and is then not written.
void zo_update_perturb(uint32_t tensor_id, ZDist dist, const ZoUpdate& upd, const ZoPerturb& pert,
                       int64_t begin, int64_t n, float* weights, float* plus, float* minus);

namespace detail {
// Box-Muller of the layout on given word pairs (wa -> u1, wb -> u2), element by
// element: exposes the float math to exhaustive tests over every u1 and u2.
void zo_gaussian_from_words(const uint32_t* wa, const uint32_t* wb, int64_t n, float* z_cos,
                            float* z_sin);
}  // namespace detail

}  // namespace zotune::kernels
