// Throughput of the fused zo kernels on GPT-2-sized buffers, next to plain
// memory traffic of the same shape (what a memory-bound pass could reach).
//
//   build-*/bench/bench_zo_kernels --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
//
// Arguments: element count, thread count. items/s = elements/s; bytes/s counts
// the bytes a kernel must move (fill: 4 B written; update+perturb: 4 B read and
// 12 B written per element; copy: 4 B read + 4 B written).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/zo_kernels.h"

namespace zk = zotune::kernels;

namespace {

constexpr int64_t kElements = int64_t{32} << 20;  // 32M: a quarter of GPT-2-124M

// Pre-touched buffers, so page faults stay out of the timings.
std::vector<float> buffer(int64_t n, float value) { return std::vector<float>(n, value); }

void set_threads(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(1)));
  state.counters["threads"] = static_cast<double>(state.range(1));
}

void finish(benchmark::State& state, int64_t n, int64_t bytes_per_element) {
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * bytes_per_element);
  state.SetLabel(zk::isa_name());
}

template <zk::ZDist kDist>
void BM_FillZ(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_threads(state);
  auto z = buffer(n, 0.0f);
  uint64_t seed = 1;
  for (auto _ : state) {
    zk::zo_fill_z(seed++, 3, kDist, 0, n, z.data());
    benchmark::DoNotOptimize(z.data());
  }
  finish(state, n, 4);
}

// The training step's pass: deferred update of step t-1 plus both perturbed copies of step t.
void BM_UpdatePerturb(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_threads(state);
  auto w = buffer(n, 0.1f), plus = buffer(n, 0.0f), minus = buffer(n, 0.0f);
  uint64_t seed = 1;
  for (auto _ : state) {
    const zk::ZoUpdate upd{true, seed, 1e-6f, 0.5f, 0.0f};
    const zk::ZoPerturb pert{true, seed + 1, 1e-3f};
    zk::zo_update_perturb(3, zk::ZDist::Gaussian, upd, pert, 0, n, w.data(), plus.data(),
                          minus.data());
    ++seed;
    benchmark::DoNotOptimize(w.data());
  }
  finish(state, n, 16);
}

// Only the perturbation (the first step, or a forward-only evaluation).
void BM_PerturbOnly(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_threads(state);
  auto w = buffer(n, 0.1f), plus = buffer(n, 0.0f), minus = buffer(n, 0.0f);
  uint64_t seed = 1;
  for (auto _ : state) {
    zk::zo_update_perturb(3, zk::ZDist::Gaussian, zk::ZoUpdate{},
                          zk::ZoPerturb{true, seed++, 1e-3f}, 0, n, w.data(), plus.data(),
                          minus.data());
    benchmark::DoNotOptimize(plus.data());
  }
  finish(state, n, 12);
}

// memcpy of the same buffer size, split over the threads like the kernels.
void BM_Copy(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_threads(state);
  auto src = buffer(n, 1.0f), dst = buffer(n, 0.0f);
  for (auto _ : state) {
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      std::memcpy(dst.data() + b, src.data() + b, static_cast<size_t>(e - b) * sizeof(float));
    }
    benchmark::DoNotOptimize(dst.data());
  }
  finish(state, n, 8);
}

// The memory traffic of update+perturb with trivial arithmetic and no RNG:
// read w, write w, w + c and w - c.
void BM_UpdatePerturbTraffic(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_threads(state);
  auto w = buffer(n, 0.1f), plus = buffer(n, 0.0f), minus = buffer(n, 0.0f);
  float* pw = w.data();
  float* pp = plus.data();
  float* pm = minus.data();
  for (auto _ : state) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float x = pw[i] * 0.999999f;
      pw[i] = x;
      pp[i] = x + 1e-3f;
      pm[i] = x - 1e-3f;
    }
    benchmark::DoNotOptimize(pw);
  }
  finish(state, n, 16);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"})->Args({kElements, 1})->Args({kElements, 2});
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

BENCHMARK(BM_FillZ<zk::ZDist::Gaussian>)->Apply(Args);
BENCHMARK(BM_FillZ<zk::ZDist::Rademacher>)->Apply(Args);
BENCHMARK(BM_UpdatePerturb)->Apply(Args);
BENCHMARK(BM_PerturbOnly)->Apply(Args);
BENCHMARK(BM_Copy)->Apply(Args);
BENCHMARK(BM_UpdatePerturbTraffic)->Apply(Args);

}  // namespace

BENCHMARK_MAIN();
