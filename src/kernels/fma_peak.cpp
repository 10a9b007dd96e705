// FMA-peak probe: 12 independent multiply-add chains per thread, in registers.
// 12 chains cover latency x issue width of current x86 cores (4-5 cycles x 2
// FMA pipes); the constants keep the values finite and are not foldable.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/fma_peak.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Runs `iters` rounds of 12 dependent-per-chain FMAs; returns the lanes per
// vector (FLOPs = 2 * 12 * lanes * iters) and stores a checksum in *sink.
HWY_NOINLINE int64_t FmaChains(int64_t iters, float seed, float* sink) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.9999999f), c = hn::Set(d, seed * 1e-7f);
  auto a0 = hn::Set(d, seed), a1 = hn::Set(d, seed + 1), a2 = hn::Set(d, seed + 2), a3 = hn::Set(d, seed + 3);
  auto a4 = hn::Set(d, seed + 4), a5 = hn::Set(d, seed + 5), a6 = hn::Set(d, seed + 6), a7 = hn::Set(d, seed + 7);
  auto a8 = hn::Set(d, seed + 8), a9 = hn::Set(d, seed + 9), a10 = hn::Set(d, seed + 10), a11 = hn::Set(d, seed + 11);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, c);
    a1 = hn::MulAdd(a1, m, c);
    a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c);
    a4 = hn::MulAdd(a4, m, c);
    a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c);
    a7 = hn::MulAdd(a7, m, c);
    a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c);
    a10 = hn::MulAdd(a10, m, c);
    a11 = hn::MulAdd(a11, m, c);
  }
  const auto s = hn::Add(hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7))),
                         hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
  *sink = hn::GetLane(hn::SumOfLanes(d, s));
  return static_cast<int64_t>(hn::Lanes(d));
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <algorithm>
#include <vector>

#include "base/timer.h"
#include "kernels/fma_peak.h"
#include "kernels/isa.h"

namespace zotune::kernels {

HWY_EXPORT(FmaChains);
HWY_EXPORT(TargetName);

namespace {

constexpr double kChains = 12;

// GFLOP/s of `threads` threads each running `iters` rounds (wall time).
double run(int threads, int64_t iters) {
  std::vector<float> sink(static_cast<std::size_t>(threads) * 16, 0.0f);
  int64_t lanes = 0;
  Stopwatch sw;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t l = HWY_DYNAMIC_DISPATCH(FmaChains)(iters, 1.0f + static_cast<float>(t), &sink[static_cast<std::size_t>(t) * 16]);
    if (t == 0) lanes = l;
  }
  const double s = sw.seconds();
  volatile float keep = sink[0];
  (void)keep;
  return 2.0 * kChains * static_cast<double>(lanes) * static_cast<double>(iters) * threads / s / 1e9;
}

double best_of(int threads, int64_t iters, int rounds) {
  double best = 0;
  for (int r = 0; r < rounds; ++r) best = std::max(best, run(threads, iters));
  return best;
}

}  // namespace

FmaPeak measure_fma_peak(int threads, double seconds, int rounds) {
  detail::ensure_isa();
  FmaPeak p;
  p.threads = threads > 0 ? threads : omp_get_max_threads();
  p.isa = HWY_DYNAMIC_DISPATCH(TargetName)();
  // Calibrate the round count to ~`seconds` per run on one thread.
  const int64_t probe_iters = 1 << 16;
  const double rate = best_of(1, probe_iters, 2) * 1e9;  // FLOP/s
  float sink = 0;
  const double flops_per_iter = 2.0 * kChains * static_cast<double>(HWY_DYNAMIC_DISPATCH(FmaChains)(1, 1.0f, &sink));
  const int64_t iters = std::max<int64_t>(probe_iters, static_cast<int64_t>(seconds * rate / flops_per_iter));
  p.gflops_1 = best_of(1, iters, rounds);
  p.gflops_n = p.threads == 1 ? p.gflops_1 : best_of(p.threads, iters, rounds);
  return p;
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
