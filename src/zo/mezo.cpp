#include "zo/mezo.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace zotune {

namespace {
uint64_t splitmix(uint64_t base, uint64_t i) {
  uint64_t z = base + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

uint64_t step_seed(uint64_t run_seed, int64_t step) { return splitmix(run_seed, static_cast<uint64_t>(step)); }

uint64_t direction_seed(uint64_t step_seed, int k) {
  return k == 0 ? step_seed : splitmix(step_seed ^ 0xD1B54A32D192ED03ull, static_cast<uint64_t>(k));
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

UpdateRecord mezo_record(const MezoOptions& o, uint64_t run_seed, int64_t step, int64_t total,
                         std::span<const double> loss_plus, std::span<const double> loss_other) {
  check(!loss_plus.empty() && loss_plus.size() == loss_other.size(), "step ", step + 1, ": losses of ",
        loss_plus.size(), " and ", loss_other.size(), " directions");
  if (loss_plus.size() == 1) return mezo_record(o, run_seed, step, total, loss_plus[0], loss_other[0]);
  UpdateRecord r;
  r.step = step + 1;
  r.lr = learning_rate(o, step, total);
  const uint64_t seed = step_seed(run_seed, step);
  const auto K = static_cast<double>(loss_plus.size());
  for (std::size_t k = 0; k < loss_plus.size(); ++k) {
    const double grad = projected_grad(o, loss_plus[k], loss_other[k]);
    check(std::isfinite(grad), "step ", step + 1, ", direction ", k, ": the loss is not finite (L+ = ", loss_plus[k],
          ", L- = ", loss_other[k], "); lower --lr or --eps");
    r.terms.push_back({direction_seed(seed, static_cast<int>(k)), static_cast<float>(grad / K)});
  }
  return r;
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
