// The fused MeZO pass over a slice of θ: the only code that applies the update
// rule. Every tier hands its stored bytes here (with their codec) and gets the
// working copies back; stores stage and commit bytes, they never see z, lr or g.
//
//   per element, in one pass, each z drawn once:
//     θ ← θ − lr · (c · z(seed') + wd · θ)    the deferred update (each term of
//                                              the record; stored back in the codec,
//                                              16-bit with stochastic rounding)
//     copy 2k = θ + ε z(seed_k),  copy 2k+1 = θ − ε z(seed_k)   this step's
//                                              working copies, k = 0..q−1 for the q
//                                              directions a pass serves (copy 2k+1
//                                              = θ when one-sided)
//   zo_apply writes copies 0 and 1 fused with the update; zo_direction makes the
//   pair of a later direction from the updated stored values (the same values a
//   pass of that direction alone would write).
//
// A slice is elements [begin, begin + n) of one tensor; z is a counter-RNG
// value of (seed, tensor, element), so any cut of a tensor into slices (blocks,
// chunks of rows, single rows) gives the same values. An optimizer with state
// (momentum, ...) adds its state slices to ThetaSlice and its arithmetic here.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/zo_kernels.h"
#include "store/codec.h"
#include "zo/update.h"

namespace zotune {

// What a pass over parameters does: the deferred update of the previous step
// and this step's perturbation.
struct BlockWork {
  kernels::ZDist dist = kernels::ZDist::Gaussian;
  std::optional<UpdateRecord> update;  // applied to θ and stored
  float weight_decay = 0;              // the run's; only tensors whose role decays get it
  bool perturb = false;                // make θ ± εz working copies
  bool one_sided = false;              // copy 2k+1 is θ itself (the L0 pass)
  // The working copies the caller will ask for when perturbing: bit 0 the W+
  // copies (even k), bit 1 the W- copies (odd k). A rank of a perturbation pair
  // (--pert-parallel 2) runs the + or the - pass of every direction and wants
  // one of the two; a tier makes only the copies wanted (zo_apply and
  // zo_direction skip the others).
  unsigned wanted = kAllCopies;
  static constexpr unsigned kAllCopies = 3u;
  bool wants(int k) const { return !perturb || (wanted >> (k % 2) & 1u) != 0; }
  // Perturbed copy k is made (wanted, and not θ itself as a one-sided copy 2d+1).
  bool makes(int k) const { return perturb && wants(k) && (k % 2 == 0 || !one_sided); }
  // The last copy the caller asks for: 2q-1, or 2q-2 when only W+ copies are wanted.
  int last_wanted() const { return 2 * directions() - (wants(1) ? 1 : 2); }
  uint64_t seed = 0;                   // direction 0's seed (the step's seed with one direction)
  std::vector<uint64_t> more_seeds;    // directions 1..q-1 of the same passes (several per step)
  float eps = 0;

  // q: the directions whose working copies a session hands out (1 unperturbed).
  int directions() const { return 1 + static_cast<int>(more_seeds.size()); }
  uint64_t seed_of(int k) const { return k == 0 ? seed : more_seeds[static_cast<std::size_t>(k - 1)]; }
};

// `work` without its update: what making a block's later working copies
// needs once the update is stored.
BlockWork without_update(const BlockWork& work);

// Elements [begin, begin + n) of tensor `tensor_id`, stored at `stored` (already
// offset to `begin`) in `codec`.
struct ThetaSlice {
  int tensor_id = 0;
  int64_t begin = 0, n = 0;
  bool decays = false;  // its role takes weight decay
  const Codec* codec = nullptr;
  void* stored = nullptr;
};

// Random values one pass drew, for the bench's counters.
struct PassDraws {
  uint64_t z = 0;         // z values (none for --perturbation ones)
  uint64_t rounding = 0;  // stochastic-rounding uniforms (16-bit write-back)
  PassDraws& operator+=(const PassDraws& o) {
    z += o.z;
    rounding += o.rounding;
    return *this;
  }
};

// The fused pass: applies work.update to the slice (written back in its codec)
// and writes the requested fp32 outputs (any may be null):
//   copy0  θ + εz when work.perturb, else θ
//   copy1  θ − εz when work.perturb and two-sided, else θ
//   theta  θ
// (θ: after the update). An fp32 slice's θ is its stored values: callers read
// them there rather than asking for a copy. A copy the work does not want
// (work.wanted) is not written; with W- alone wanted it is made directly, as
// the perturbation with -eps (the same bits as beside W+), one z draw.
PassDraws zo_apply(const BlockWork& work, const ThetaSlice& s, float* copy0, float* copy1, float* theta);

// Copies 2d and 2d+1 of direction d (0 <= d < work.directions()) of a slice
// whose update has already been applied (work.update is not applied again):
// what zo_apply writes into copy0 / copy1 for a work of that direction alone.
PassDraws zo_direction(const BlockWork& work, const ThetaSlice& s, int d, float* copy0, float* copy1);

// Working copy k (0 <= k < 2 q, as zo_apply / zo_direction write it) of a
// slice whose update has already been applied: lean tiers keep one fp32 copy
// of a block and make each next copy from the stored values once the one
// before has been used. Equal to what zo_apply writes, at the price of one
// more z draw.
PassDraws zo_working_copy(const BlockWork& work, const ThetaSlice& s, int k, float* out);

}  // namespace zotune
