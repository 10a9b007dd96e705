// The fused zeroth-order kernels of zo_kernels.h: z regeneration, deferred
// update and perturbation in one pass. Work is done a 64-element group at a
// time (one group = the 16 Philox blocks of the layout); a group cut by the
// range's ends is computed whole into a scratch buffer and the needed part
// taken from there, so z never depends on where a range or a thread starts.
#include "kernels/hwy_targets.h"

#include <algorithm>
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/zo_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/zo_rng-inl.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Groups generated together where a range allows (see PhiloxGroups). A group
// is 8 Philox state registers with AVX-512 (of 32), but 16 with AVX2 (of 16).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kBatch = 2;
#else
constexpr int64_t kBatch = 1;
#endif
template <int64_t kG>
using GroupCount = std::integral_constant<int64_t, kG>;

// Calls gen(GroupCount<kG>(), group, out) to generate groups group .. group +
// kG - 1 into out, for every group touching [begin, begin + n), and leaves
// element begin + j at out[j].
template <class Gen>
HWY_INLINE void ForGroups(int64_t begin, int64_t n, float* HWY_RESTRICT out, const Gen& gen) {
  HWY_ALIGN float scratch[kZoGroup];
  const int64_t end = begin + n;
  int64_t i = begin;
  while (i < end) {
    const int64_t group = i / kZoGroup, group_begin = group * kZoGroup;
    if (i == group_begin && end - i >= kBatch * kZoGroup) {
      gen(GroupCount<kBatch>(), static_cast<uint64_t>(group), out + (i - begin));
      i += kBatch * kZoGroup;
    } else if (i == group_begin && end - i >= kZoGroup) {
      gen(GroupCount<1>(), static_cast<uint64_t>(group), out + (i - begin));
      i += kZoGroup;
    } else {
      gen(GroupCount<1>(), static_cast<uint64_t>(group), scratch);
      const int64_t stop = std::min(end, group_begin + kZoGroup);
      for (int64_t j = i; j < stop; ++j) out[j - begin] = scratch[j - group_begin];
      i = stop;
    }
  }
}

template <ZDist kDist>
HWY_NOINLINE void FillZDist(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n,
                            float* out) {
  const ZoRoundKeys keys = zo_round_keys(seed);
  ForGroups(begin, n, out, [&](auto count, uint64_t group, float* HWY_RESTRICT o) {
    ZGroups<kDist, decltype(count)::value>(keys, group, tensor_id, o);
  });
}

void FillZ(uint64_t seed, uint32_t tensor_id, ZDist dist, int64_t begin, int64_t n, float* out) {
  switch (dist) {
    case ZDist::Gaussian:
      return FillZDist<ZDist::Gaussian>(seed, tensor_id, begin, n, out);
    case ZDist::Rademacher:
      return FillZDist<ZDist::Rademacher>(seed, tensor_id, begin, n, out);
    case ZDist::Ones:
      return FillZDist<ZDist::Ones>(seed, tensor_id, begin, n, out);
  }
}

void FillUniform(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n, float* out) {
  const ZoRoundKeys keys = zo_round_keys(seed);
  ForGroups(begin, n, out, [&](auto count, uint64_t group, float* HWY_RESTRICT o) {
    UniformGroups<decltype(count)::value>(keys, group, tensor_id, o);
  });
}

void GaussianFromWords(const uint32_t* wa, const uint32_t* wb, int64_t n, float* z_cos,
                       float* z_sin) {
  const ZoD32 du;
  const hn::Rebind<float, ZoD32> df;
  const hn::CappedTag<uint32_t, 1> du1;
  const hn::CappedTag<float, 1> df1;
  constexpr int64_t kN = static_cast<int64_t>(hn::MaxLanes(du));
  int64_t i = 0;
  for (; i + kN <= n; i += kN) {
    hn::Vec<decltype(df)> zc, zs;
    BoxMuller(hn::LoadU(du, wa + i), hn::LoadU(du, wb + i), zc, zs);
    hn::StoreU(zc, df, z_cos + i);
    hn::StoreU(zs, df, z_sin + i);
  }
  for (; i < n; ++i) {
    hn::Vec<decltype(df1)> zc, zs;
    BoxMuller(hn::LoadU(du1, wa + i), hn::LoadU(du1, wb + i), zc, zs);
    hn::StoreU(zc, df1, z_cos + i);
    hn::StoreU(zs, df1, z_sin + i);
  }
}

struct ZoStepParams {
  float lr, grad, wd, eps;
};

// The per-element arithmetic of zo_kernels.h on a vector of any width (full
// vectors inside a group, single lanes at a range's ends: same values).
template <bool kUpdate, bool kPerturb, class D>
HWY_INLINE void UpdatePerturbLanes(D d, const ZoStepParams& p, const float* HWY_RESTRICT z_prev,
                                   const float* HWY_RESTRICT z, float* HWY_RESTRICT weights,
                                   float* HWY_RESTRICT plus, float* HWY_RESTRICT minus) {
  auto w = hn::LoadU(d, weights);
  if constexpr (kUpdate) {
    const auto step =
        hn::Add(hn::Mul(hn::Set(d, p.grad), hn::LoadU(d, z_prev)), hn::Mul(hn::Set(d, p.wd), w));
    w = hn::Sub(w, hn::Mul(hn::Set(d, p.lr), step));
    hn::StoreU(w, d, weights);
  }
  if constexpr (kPerturb) {
    const auto ez = hn::Mul(hn::Set(d, p.eps), hn::LoadU(d, z));
    hn::StoreU(hn::Add(w, ez), d, plus);
    if (minus != nullptr) hn::StoreU(hn::Sub(w, ez), d, minus);
  }
}

template <ZDist kDist, bool kUpdate, bool kPerturb>
HWY_NOINLINE void UpdatePerturbT(uint32_t tensor_id, uint64_t seed_prev, uint64_t seed,
                                 const ZoStepParams& p, int64_t begin, int64_t n,
                                 float* HWY_RESTRICT weights, float* HWY_RESTRICT plus,
                                 float* HWY_RESTRICT minus) {
  const hn::CappedTag<float, 16> d;
  const hn::CappedTag<float, 1> d1;
  constexpr int64_t kN = static_cast<int64_t>(hn::MaxLanes(d));
  const ZoRoundKeys keys_prev = zo_round_keys(seed_prev), keys = zo_round_keys(seed);
  HWY_ALIGN float z_prev[kBatch * kZoGroup];
  HWY_ALIGN float z[kBatch * kZoGroup];
  // Generates z for kG groups from `group` (z_prev / z index 0 = element group * 64).
  const auto draw = [&](auto count, int64_t group) {
    constexpr size_t kG = static_cast<size_t>(decltype(count)::value);
    if constexpr (kUpdate)
      ZGroups<kDist, kG>(keys_prev, static_cast<uint64_t>(group), tensor_id, z_prev);
    if constexpr (kPerturb) ZGroups<kDist, kG>(keys, static_cast<uint64_t>(group), tensor_id, z);
  };
  // Elements [j, j + lanes) relative to `begin`, whose z sit at z[j - zj];
  // plus/minus may be null without kPerturb, minus also with it.
  const auto lanes = [&](auto tag, int64_t j, int64_t zj) {
    UpdatePerturbLanes<kUpdate, kPerturb>(tag, p, z_prev + (j - zj), z + (j - zj), weights + j,
                                          kPerturb ? plus + j : nullptr,
                                          kPerturb && minus ? minus + j : nullptr);
  };
  const int64_t end = begin + n;
  int64_t i = begin;
  while (i < end) {
    const int64_t group = i / kZoGroup, group_begin = group * kZoGroup;
    const int64_t zj = group_begin - begin;  // where the group starts, relative to begin
    if (i == group_begin && end - i >= kBatch * kZoGroup) {
      draw(GroupCount<kBatch>(), group);
      for (int64_t j = zj; j < zj + kBatch * kZoGroup; j += kN) lanes(d, j, zj);
      i += kBatch * kZoGroup;
    } else {
      draw(GroupCount<1>(), group);
      const int64_t stop = std::min(end, group_begin + kZoGroup);
      if (i == group_begin && stop - i == kZoGroup) {
        for (int64_t j = zj; j < zj + kZoGroup; j += kN) lanes(d, j, zj);
      } else {
        for (int64_t j = i - begin; j < stop - begin; ++j) lanes(d1, j, zj);
      }
      i = stop;
    }
  }
}

template <ZDist kDist>
HWY_INLINE void UpdatePerturbDist(uint32_t tensor_id, const ZoUpdate& upd, const ZoPerturb& pert,
                                  int64_t begin, int64_t n, float* weights, float* plus,
                                  float* minus) {
  const ZoStepParams p{upd.lr, upd.grad, upd.weight_decay, pert.eps};
  if (upd.active && pert.active)
    UpdatePerturbT<kDist, true, true>(tensor_id, upd.seed, pert.seed, p, begin, n, weights, plus,
                                      minus);
  else if (upd.active)
    UpdatePerturbT<kDist, true, false>(tensor_id, upd.seed, pert.seed, p, begin, n, weights, plus,
                                       minus);
  else if (pert.active)
    UpdatePerturbT<kDist, false, true>(tensor_id, upd.seed, pert.seed, p, begin, n, weights, plus,
                                       minus);
}

void UpdatePerturb(uint32_t tensor_id, ZDist dist, const ZoUpdate& upd, const ZoPerturb& pert,
                   int64_t begin, int64_t n, float* weights, float* plus, float* minus) {
  switch (dist) {
    case ZDist::Gaussian:
      return UpdatePerturbDist<ZDist::Gaussian>(tensor_id, upd, pert, begin, n, weights, plus,
                                                minus);
    case ZDist::Rademacher:
      return UpdatePerturbDist<ZDist::Rademacher>(tensor_id, upd, pert, begin, n, weights, plus,
                                                  minus);
    case ZDist::Ones:
      return UpdatePerturbDist<ZDist::Ones>(tensor_id, upd, pert, begin, n, weights, plus, minus);
  }
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <limits>

#include "base/error.h"
#include "kernels/isa.h"
#include "kernels/parallel.h"
#include "kernels/zo_kernels.h"

namespace zotune::kernels {

HWY_EXPORT(FillZ);
HWY_EXPORT(FillUniform);
HWY_EXPORT(UpdatePerturb);
HWY_EXPORT(GaussianFromWords);

namespace {

// Groups per thread below which a second thread does not pay off (32K elements:
// tens of microseconds of RNG work against a few microseconds to wake a thread).
constexpr int64_t kGrainGroups = 512;
constexpr int64_t kGroup = 64;

// Runs body(b, e) on sub-ranges of [begin, begin + n) whose inner boundaries
// are group boundaries, so no group is generated twice.
template <class Body>
void for_group_ranges(int64_t begin, int64_t n, const Body& body) {
  const int64_t first = begin / kGroup, last = (begin + n + kGroup - 1) / kGroup;
  detail::parallel_ranges(
      last - first, kGrainGroups,
      [&](int64_t gb, int64_t ge) {
        const int64_t b = std::max(begin, (first + gb) * kGroup);
        const int64_t e = std::min(begin + n, (first + ge) * kGroup);
        if (b < e) body(b, e);
      },
      1);
}

void check_range(const char* fn, uint32_t tensor_id, int64_t begin, int64_t n) {
  check(begin >= 0 && n >= 0 && n <= std::numeric_limits<int64_t>::max() - begin, fn, ": tensor ",
        tensor_id, ": bad element range begin=", begin, " n=", n);
}

}  // namespace

void zo_fill_z(uint64_t seed, uint32_t tensor_id, ZDist dist, int64_t begin, int64_t n,
               float* out) {
  check_range("zo_fill_z", tensor_id, begin, n);
  if (n == 0) return;
  check(out != nullptr, "zo_fill_z: tensor ", tensor_id, ": null output");
  detail::ensure_isa();
  for_group_ranges(begin, n, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(FillZ)(seed, tensor_id, dist, b, e - b, out + (b - begin));
  });
}

void zo_fill_uniform(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n, float* out) {
  check_range("zo_fill_uniform", tensor_id, begin, n);
  if (n == 0) return;
  check(out != nullptr, "zo_fill_uniform: tensor ", tensor_id, ": null output");
  detail::ensure_isa();
  for_group_ranges(begin, n, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(FillUniform)(seed, tensor_id, b, e - b, out + (b - begin));
  });
}

void zo_update_perturb(uint32_t tensor_id, ZDist dist, const ZoUpdate& upd, const ZoPerturb& pert,
                       int64_t begin, int64_t n, float* weights, float* plus, float* minus) {
  check_range("zo_update_perturb", tensor_id, begin, n);
  if (n == 0 || (!upd.active && !pert.active)) return;
  check(weights != nullptr, "zo_update_perturb: tensor ", tensor_id, ": null weights");
  check(!pert.active || plus != nullptr, "zo_update_perturb: tensor ", tensor_id,
        ": perturbation active but plus is null");
  detail::ensure_isa();
  for_group_ranges(begin, n, [&](int64_t b, int64_t e) {
    const int64_t o = b - begin;
    float* plus_o = pert.active ? plus + o : nullptr;
    float* minus_o = pert.active && minus != nullptr ? minus + o : nullptr;
    HWY_DYNAMIC_DISPATCH(UpdatePerturb)(tensor_id, dist, upd, pert, b, e - b, weights + o, plus_o,
                                        minus_o);
  });
}

namespace detail {

void zo_gaussian_from_words(const uint32_t* wa, const uint32_t* wb, int64_t n, float* z_cos,
                            float* z_sin) {
  ensure_isa();
  HWY_DYNAMIC_DISPATCH(GaussianFromWords)(wa, wb, n, z_cos, z_sin);
}

}  // namespace detail

}  // namespace zotune::kernels
#endif  // HWY_ONCE
