// MeZO-SGD: the optimizer's knobs, its seeds and learning rates, and the one
// place a step's losses become its update record. The fused pass that applies
// a record is zo/apply.h, its replay zo/replay.h; the execution order (dual
// forward, deferred fused update) lives in src/train/engine.cpp.
//
//   step t, seed s_t:  L+ = L(θ + εz),  L- = L(θ - εz),  g = (L+ - L-) / (2ε)
//   one-sided:         L0 = L(θ),                       g = (L+ - L0) / ε
//   update:            θ ← θ - lr_t · (g · z + wd · θ)   (wd = 0 for biases and norm weights)
//   K directions:      z_k from seed_k = direction_seed(s_t, k), g_k from each pair,
//                      θ ← θ - lr_t · ((1/K) Σ_k g_k z_k + wd · θ)   (one record of K terms)
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "kernels/zo_kernels.h"
#include "zo/update.h"

namespace zotune {

enum class ScheduleKind : uint8_t { Constant, Linear };

struct MezoOptions {
  float lr = 1e-6f;
  float eps = 1e-3f;
  float weight_decay = 0.0f;
  kernels::ZDist dist = kernels::ZDist::Gaussian;
  bool one_sided = false;
  ScheduleKind schedule = ScheduleKind::Constant;
  int64_t warmup_steps = 0;
  int directions = 1;  // K: independent z's per step (--directions)
};

// The seed of step t (0-based) of a run: splitmix64 of the run seed and t, so any
// step's z can be regenerated from (run seed, t) alone.
uint64_t step_seed(uint64_t run_seed, int64_t step);

// The seed of direction k of a step whose seed is `step_seed`: direction 0 is
// the step seed itself (one direction is MeZO-SGD unchanged), the others a
// splitmix64 of (step seed, k).
uint64_t direction_seed(uint64_t step_seed, int k);

// Learning rate of step t (0-based) of `total` steps: linear warm-up from 0 over
// warmup_steps, then constant or linear decay to 0 at `total` (HF's
// get_linear_schedule_with_warmup / get_constant_schedule_with_warmup).
float learning_rate(const MezoOptions& o, int64_t step, int64_t total);

// g from the two losses.
inline double projected_grad(const MezoOptions& o, double loss_plus, double loss_other) {
  return o.one_sided ? (loss_plus - loss_other) / o.eps : (loss_plus - loss_other) / (2.0 * o.eps);
}

// The update of step t (0-based) of `total` from its two losses: one term
// (step seed, g) at the step's learning rate. Throws naming the step and its
// losses when g is not finite.
UpdateRecord mezo_record(const MezoOptions& o, uint64_t run_seed, int64_t step, int64_t total, double loss_plus,
                         double loss_other);
// K directions: term k is (direction_seed(step seed, k), g_k / K), g_k from
// loss_plus[k] and loss_other[k].
UpdateRecord mezo_record(const MezoOptions& o, uint64_t run_seed, int64_t step, int64_t total,
                         std::span<const double> loss_plus, std::span<const double> loss_other);

std::optional<kernels::ZDist> zdist_from_name(const std::string& s);
const char* zdist_name(kernels::ZDist d);

}  // namespace zotune
