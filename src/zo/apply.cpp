#include "zo/apply.h"

#include <algorithm>

#include "base/error.h"

namespace zotune {

namespace {

kernels::ZoUpdate kernel_update(const UpdateRecord& r, const UpdateTerm& t, float wd) {
  return {true, t.seed, r.lr, t.coeff, wd};
}

kernels::ZoPerturb kernel_perturb(const BlockWork& w, int d, float sign) {
  return w.perturb ? kernels::ZoPerturb{true, w.seed_of(d), sign * w.eps} : kernels::ZoPerturb{};
}

uint64_t z_draws(const BlockWork& w, int64_t n, int passes) {
  return w.dist == kernels::ZDist::Ones ? 0 : static_cast<uint64_t>(n) * static_cast<uint64_t>(passes);
}

// One kernel pass over the slice: `upd` and `pert` as the kernels define them.
void kernel_pass(const BlockWork& w, const ThetaSlice& s, const kernels::ZoUpdate& upd, const kernels::ZoPerturb& pert,
                 float* plus, float* minus, float* theta) {
  const auto id = static_cast<uint32_t>(s.tensor_id);
  if (s.codec->lowbit()) {
    kernels::zo_lowbit_update_perturb(id, s.codec->format(), w.dist, upd, pert, s.begin, s.n,
                                      static_cast<uint16_t*>(s.stored), plus, minus, theta);
    return;
  }
  if (upd.active || pert.active)
    kernels::zo_update_perturb(id, w.dist, upd, pert, s.begin, s.n, static_cast<float*>(s.stored), plus, minus);
  if (theta) std::copy_n(static_cast<const float*>(s.stored), s.n, theta);
}

// zo_apply with `update` (null: none) and the perturbation of direction `dir`.
PassDraws apply_pass(const BlockWork& work, const UpdateRecord* update, int dir, const ThetaSlice& s, float* copy0,
                     float* copy1, float* theta) {
  check(s.codec != nullptr && s.stored != nullptr, "zo_apply: tensor ", s.tensor_id, ": no stored values");
  PassDraws d;
  const float wd = s.decays ? work.weight_decay : 0.0f;
  const std::size_t terms = update ? update->terms.size() : 0;
  // Every term but the last is a pass of its own (weight decay with the first);
  // the last is fused with the perturbation and the working copies.
  for (std::size_t k = 0; k + 1 < terms; ++k) {
    kernel_pass(work, s, kernel_update(*update, update->terms[k], k == 0 ? wd : 0.0f), {}, nullptr, nullptr, nullptr);
    d.z += z_draws(work, s.n, 1);
  }
  const kernels::ZoUpdate upd =
      terms ? kernel_update(*update, update->terms.back(), terms == 1 ? wd : 0.0f) : kernels::ZoUpdate{};
  if (work.perturb) {
    if (!work.wants(2 * dir)) copy0 = nullptr;
    if (!work.wants(2 * dir + 1)) copy1 = nullptr;
  }
  // Only W- wanted: the perturbation with -eps into it (exact: x + (-a) == x - a).
  const bool minus_only = work.perturb && !work.one_sided && !copy0 && copy1;
  // No perturbed copy asked for (one-sided with copy 1 alone: θ): nothing drawn.
  const kernels::ZoPerturb pert =
      copy0 || minus_only ? kernel_perturb(work, dir, minus_only ? -1.0f : 1.0f) : kernels::ZoPerturb{};
  float* plus = !pert.active ? nullptr : minus_only ? copy1 : copy0;
  float* minus = pert.active && !work.one_sided && !minus_only ? copy1 : nullptr;
  // θ in fp32: asked for, or the unperturbed copies (16-bit: the kernel writes it).
  float* th = theta ? theta : !pert.active && copy0 ? copy0 : copy1 && !minus && !minus_only ? copy1 : nullptr;
  kernel_pass(work, s, upd, pert, plus, minus, th);
  for (float* c : {pert.active ? nullptr : copy0, minus || minus_only ? nullptr : copy1})
    if (c && c != th) std::copy_n(th, s.n, c);
  d.z += z_draws(work, s.n, (upd.active ? 1 : 0) + (pert.active ? 1 : 0));
  if (upd.active && s.codec->lowbit()) d.rounding += static_cast<uint64_t>(s.n) * terms;
  return d;
}

}  // namespace

BlockWork without_update(const BlockWork& work) {
  BlockWork w = work;
  w.update.reset();
  return w;
}

PassDraws zo_apply(const BlockWork& work, const ThetaSlice& s, float* copy0, float* copy1, float* theta) {
  return apply_pass(work, work.update ? &*work.update : nullptr, 0, s, copy0, copy1, theta);
}

PassDraws zo_direction(const BlockWork& work, const ThetaSlice& s, int d, float* copy0, float* copy1) {
  check(d >= 0 && d < work.directions(), "zo_direction: tensor ", s.tensor_id, ": no direction ", d, " of ",
        work.directions());
  return apply_pass(work, nullptr, d, s, copy0, copy1, nullptr);
}

PassDraws zo_working_copy(const BlockWork& work, const ThetaSlice& s, int k, float* out) {
  check(s.codec != nullptr && s.stored != nullptr && k >= 0 && k < 2 * work.directions(), "zo_working_copy: tensor ",
        s.tensor_id, ": bad slice or copy ", k);
  if (!work.perturb || (k % 2 == 1 && work.one_sided)) {  // θ: a decode, nothing drawn
    kernel_pass(work, s, {}, {}, nullptr, nullptr, out);
    return {};
  }
  // W- as the perturbation with -eps: exact, x + (-a) == x - a.
  kernel_pass(work, s, {}, kernel_perturb(work, k / 2, k % 2 == 0 ? 1.0f : -1.0f), out, nullptr, nullptr);
  return {z_draws(work, s.n, 1), 0};
}

}  // namespace zotune
