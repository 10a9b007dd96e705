#include "zo/mezo.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace zotune {

uint64_t step_seed(uint64_t run_seed, int64_t step) {
  uint64_t z = run_seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float learning_rate(const MezoOptions& o, int64_t step, int64_t total) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<float>(step) / static_cast<float>(o.warmup_steps);  // HF: 0 at step 0
  if (o.schedule == ScheduleKind::Constant) return o.lr;
  const int64_t decay_steps = std::max<int64_t>(1, total - o.warmup_steps);
  const double frac = static_cast<double>(total - step) / static_cast<double>(decay_steps);
  return static_cast<float>(o.lr * std::clamp(frac, 0.0, 1.0));
}

UpdateRecord mezo_record(const MezoOptions& o, uint64_t run_seed, int64_t step, int64_t total, double loss_plus,
                         double loss_other) {
  const double grad = projected_grad(o, loss_plus, loss_other);
  check(std::isfinite(grad), "step ", step + 1, ": the loss is not finite (L+ = ", loss_plus, ", L- = ", loss_other,
        "); lower --lr or --eps");
  return UpdateRecord(step + 1, step_seed(run_seed, step), learning_rate(o, step, total), static_cast<float>(grad));
}

std::optional<kernels::ZDist> zdist_from_name(const std::string& s) {
  if (s == "gaussian" || s == "normal") return kernels::ZDist::Gaussian;
  if (s == "rademacher") return kernels::ZDist::Rademacher;
  if (s == "ones") return kernels::ZDist::Ones;
  return std::nullopt;
}

const char* zdist_name(kernels::ZDist d) {
  switch (d) {
    case kernels::ZDist::Gaussian: return "gaussian";
    case kernels::ZDist::Rademacher: return "rademacher";
    case kernels::ZDist::Ones: return "ones";
  }
  return "?";
}

}  // namespace zotune
