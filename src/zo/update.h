// The update record: what one step does to θ, enough to redo it exactly.
//
//   θ ← θ − lr · (Σ_k c_k · z(seed_k) + wd · θ)     (wd: the run's, 0 for biases and norms)
//
// One term (seed, coefficient) per perturbation direction. MeZO-SGD has one
// direction per step and c = g, its projected gradient; q directions would
// give q terms with c_k = g_k / q. The record is what the update log holds, what
// the engine defers to the next step's first touch, and what replay and the
// disk tier's catch-up re-apply (zo/apply.h, zo/replay.h).
#pragma once
#include <cstdint>
#include <vector>

namespace zotune {

struct UpdateTerm {
  uint64_t seed = 0;  // the direction's step seed: z = z(seed, tensor, element)
  float coeff = 0;    // its coefficient (MeZO: the projected gradient g)
};

struct UpdateRecord {
  int64_t step = 0;  // 1-based: the update that completes step `step`
  float lr = 0;
  std::vector<UpdateTerm> terms;

  UpdateRecord() = default;
  // A single-direction step (MeZO-SGD).
  UpdateRecord(int64_t step, uint64_t seed, float lr, float grad) : step(step), lr(lr), terms{{seed, grad}} {}
};

}  // namespace zotune
