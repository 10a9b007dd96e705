// Kernel throughput at GPT-2-124M shapes (C = 768, 12 heads of 64, V = 50257,
// 512 tokens = B 4 x T 128). Prints GFLOP/s for GEMMs and elements or bytes
// per second for the rest. ZOTUNE_ISA=avx2|sse4|scalar picks another target.
//
//   bench_kernels --benchmark_filter=Sgemm
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp bench_kernels   # OpenBLAS variant
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zk = zotune::kernels;

namespace {

zotune::AlignedBuffer<float> random_buffer(size_t n, float lo, float hi, uint32_t seed) {
  zotune::AlignedBuffer<float> b(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (size_t i = 0; i < n; ++i) b[i] = dist(rng);
  return b;
}

void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// C[M,N] = A[M,K] * W[N,K]^T, the nn.Linear layout: sgemm directly, or
// through the compute-backend seam (kernels::matmul: dtype dispatch, then the
// fp32 OpenBLAS backend). BM_LinearSgemm/BM_LinearSeam are timed in CPU time
// so a busy machine hurts both alike: the seam's cost per call.
template <bool kSeam>
void BM_Linear(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  auto A = random_buffer(static_cast<size_t>(M * K), -1, 1, 1);
  auto W = random_buffer(static_cast<size_t>(N * K), -1, 1, 2);
  zotune::AlignedBuffer<float> C(static_cast<size_t>(M * N));
  for (auto _ : state) {
    if constexpr (kSeam)
      zk::matmul({A.data(), zotune::DType::F32, M, K, N, 0, 0, {W.data(), zotune::DType::F32, zotune::WeightLayout::OutIn}, C.data()});
    else
      zk::sgemm(false, true, M, N, K, 1.0f, A.data(), K, W.data(), K, 0.0f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK(BM_Linear<false>)
    ->Name("BM_Sgemm")
    ->ArgNames({"M", "N", "K"})
    ->Args({512, 2304, 768})   // qkv
    ->Args({512, 768, 768})    // attention output
    ->Args({512, 3072, 768})   // mlp up
    ->Args({512, 768, 3072})   // mlp down
    ->Args({512, 50257, 768})  // lm head
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Linear<false>)->Name("BM_LinearSgemm")->ArgNames({"M", "N", "K"})->Args({1, 64, 64})->Args({512, 768, 768});
BENCHMARK(BM_Linear<true>)->Name("BM_LinearSeam")->ArgNames({"M", "N", "K"})->Args({1, 64, 64})->Args({512, 768, 768});

// An MLP as the forward runs it: sgemm (OpenBLAS threads), bias + gelu
// (OpenMP threads), sgemm. Shows what switching thread pools costs.
void BM_MlpBlock(benchmark::State& state) {
  const int64_t T = 512, C = 768, F = 3072;
  auto x = random_buffer(static_cast<size_t>(T * C), -1, 1, 3);
  auto w1 = random_buffer(static_cast<size_t>(F * C), -0.05f, 0.05f, 4);
  auto w2 = random_buffer(static_cast<size_t>(C * F), -0.05f, 0.05f, 5);
  auto b1 = random_buffer(static_cast<size_t>(F), -0.1f, 0.1f, 6);
  zotune::AlignedBuffer<float> h(static_cast<size_t>(T * F)), y(static_cast<size_t>(T * C));
  for (auto _ : state) {
    zk::sgemm(false, true, T, F, C, 1.0f, x.data(), C, w1.data(), C, 0.0f, h.data(), F);
    zk::add_bias_rows(h.data(), b1.data(), T, F);
    zk::gelu_tanh_inplace(h.data(), T * F);
    zk::sgemm(false, true, T, C, F, 1.0f, h.data(), F, w2.data(), F, 0.0f, y.data(), C);
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, 2.0 * 2 * T * C * F);
}
BENCHMARK(BM_MlpBlock)->Unit(benchmark::kMillisecond)->UseRealTime();

// The loss head: logits = h W_te^T, then logsumexp per row (OpenMP).
void BM_LmHeadLoss(benchmark::State& state) {
  const int64_t T = 512, C = 768, V = 50257;
  auto h = random_buffer(static_cast<size_t>(T * C), -1, 1, 24);
  auto w = random_buffer(static_cast<size_t>(V * C), -0.05f, 0.05f, 25);
  zotune::AlignedBuffer<float> logits(static_cast<size_t>(T * V));
  std::vector<float> lse(static_cast<size_t>(T));
  for (auto _ : state) {
    zk::sgemm(false, true, T, V, C, 1.0f, h.data(), C, w.data(), C, 0.0f, logits.data(), V);
    zk::logsumexp_rows(logits.data(), T, V, lse.data());
    benchmark::DoNotOptimize(lse.data());
  }
  set_flops(state, 2.0 * T * V * C);
}
BENCHMARK(BM_LmHeadLoss)->Unit(benchmark::kMillisecond)->UseRealTime();

template <void (*Fn)(float*, int64_t)>
void BM_Unary(benchmark::State& state) {
  const int64_t n = state.range(0);
  // Fresh inputs each time (repeated gelu drifts into subnormals, which are
  // slow), copied by all threads so that each finds its part in its own cache,
  // as after the sgemm that produces them.
  auto x = random_buffer(static_cast<size_t>(n), -4, 4, 7);
  zotune::AlignedBuffer<float> work(static_cast<size_t>(n));
  work.zero();
  for (auto _ : state) {
    state.PauseTiming();
    zk::scale_inplace(work.data(), 0.0f, n);  // touch with the kernels' split...
    zk::add_inplace(work.data(), x.data(), n);  // ...and fill
    state.ResumeTiming();
    Fn(work.data(), n);
    benchmark::DoNotOptimize(work.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 8);
}
BENCHMARK(BM_Unary<zk::gelu_tanh_inplace>)->Name("BM_GeluTanh")->Arg(512 * 3072)->UseRealTime();
BENCHMARK(BM_Unary<zk::gelu_erf_inplace>)->Name("BM_GeluErf")->Arg(512 * 3072)->UseRealTime();

void BM_SiluMul(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto g = random_buffer(static_cast<size_t>(n), -4, 4, 8);
  auto u = random_buffer(static_cast<size_t>(n), -4, 4, 9);
  zotune::AlignedBuffer<float> out(static_cast<size_t>(n));
  for (auto _ : state) {
    zk::silu_mul(g.data(), u.data(), out.data(), n);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_SiluMul)->Arg(512 * 3072)->UseRealTime();

void BM_AddInplace(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = random_buffer(static_cast<size_t>(n), -1, 1, 10);
  auto y = random_buffer(static_cast<size_t>(n), -1, 1, 11);
  for (auto _ : state) {
    zk::add_inplace(y.data(), x.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_AddInplace)->Arg(512 * 768)->UseRealTime();

void BM_LayerNorm(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  auto x = random_buffer(static_cast<size_t>(rows * cols), -2, 2, 12);
  auto g = random_buffer(static_cast<size_t>(cols), 0.5f, 1.5f, 13);
  auto b = random_buffer(static_cast<size_t>(cols), -1, 1, 14);
  zotune::AlignedBuffer<float> y(static_cast<size_t>(rows * cols));
  for (auto _ : state) {
    zk::layer_norm(x.data(), g.data(), b.data(), y.data(), rows, cols, 1e-5f);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}
BENCHMARK(BM_LayerNorm)->Args({512, 768})->Args({1, 768})->UseRealTime();

void BM_RmsNorm(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  auto x = random_buffer(static_cast<size_t>(rows * cols), -2, 2, 15);
  auto w = random_buffer(static_cast<size_t>(cols), 0.5f, 1.5f, 16);
  zotune::AlignedBuffer<float> y(static_cast<size_t>(rows * cols));
  for (auto _ : state) {
    zk::rms_norm(x.data(), w.data(), y.data(), rows, cols, 1e-6f);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}
BENCHMARK(BM_RmsNorm)->Args({512, 896})->UseRealTime();

void BM_Softmax(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  auto work = random_buffer(static_cast<size_t>(rows * cols), -8, 8, 17);
  for (auto _ : state) {
    zk::softmax_rows(work.data(), rows, cols);  // in place, repeatedly: same cost
    benchmark::DoNotOptimize(work.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}
BENCHMARK(BM_Softmax)->Args({4 * 12 * 128, 128})->UseRealTime();

void BM_LogSumExp(benchmark::State& state) {
  const int64_t rows = state.range(0), V = state.range(1);
  auto logits = random_buffer(static_cast<size_t>(rows * V), -10, 10, 18);
  std::vector<float> lse(static_cast<size_t>(rows));
  for (auto _ : state) {
    zk::logsumexp_rows(logits.data(), rows, V, lse.data());
    benchmark::DoNotOptimize(lse.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * V);
  state.SetBytesProcessed(state.iterations() * rows * V * 4);
}
BENCHMARK(BM_LogSumExp)->Args({512, 50257})->Args({1, 50257})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Rope(benchmark::State& state) {
  const int64_t rows = 512, heads = 12, D = 64;
  auto x = random_buffer(static_cast<size_t>(rows * heads * D), -1, 1, 19);
  std::vector<float> inv_freq(D / 2);
  for (int64_t i = 0; i < D / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / D);
  std::vector<int64_t> pos(rows);
  for (int64_t r = 0; r < rows; ++r) pos[r] = r % 128;
  for (auto _ : state) {
    zk::rope_inplace(x.data(), rows, heads * D, heads, D, pos.data(), inv_freq.data());
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * heads * D);
}
BENCHMARK(BM_Rope)->UseRealTime();

// Args: B, Tq, Tk, q_offset. q/k/v interleaved as in GPT-2's c_attn output.
void BM_Attention(benchmark::State& state) {
  const int64_t B = state.range(0), Tq = state.range(1), Tk = state.range(2), H = 12, D = 64;
  zk::AttentionShape s{B, Tq, Tk, H, H, D, 3 * H * D, 2 * H * D, H * D, state.range(3),
                       1.0f / std::sqrt(static_cast<float>(D))};
  auto q = random_buffer(static_cast<size_t>(B * Tq * s.q_stride), -1, 1, 20);
  auto kv = random_buffer(static_cast<size_t>(B * Tk * s.kv_stride), -1, 1, 21);
  std::vector<uint8_t> valid(static_cast<size_t>(B * Tk), 1);
  zotune::AlignedBuffer<float> out(static_cast<size_t>(B * Tq * s.out_stride));
  zotune::AlignedBuffer<float> scratch(static_cast<size_t>(zk::attention_scratch_floats(s, 2)));
  for (auto _ : state) {
    zk::attention(s, q.data(), kv.data(), kv.data() + H * D, valid.data(), out.data(), scratch.data());
    benchmark::DoNotOptimize(out.data());
  }
  // q k^T and p v over the visible (causal) keys.
  double visible = 0;
  for (int64_t i = 0; i < Tq; ++i) visible += static_cast<double>(std::min(Tk, s.q_offset + i + 1));
  set_flops(state, 4.0 * B * H * D * visible);
  state.SetBytesProcessed(state.iterations() * B * Tk * 2 * H * D * 4);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"B", "Tq", "Tk", "off"})
    ->Args({4, 128, 128, 0})     // full forward
    ->Args({4, 1, 2048, 2047})   // decode at a long cache
    ->Args({1, 512, 512, 0})
    ->UseRealTime();

void BM_CastBf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = random_buffer(static_cast<size_t>(n), -4, 4, 22);
  std::vector<uint16_t> h(static_cast<size_t>(n));
  zotune::AlignedBuffer<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    zk::f32_to_bf16(x.data(), h.data(), n);
    zk::bf16_to_f32(h.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * n * 2);
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_CastBf16)->Arg(1 << 22)->UseRealTime();

void BM_CastF16(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = random_buffer(static_cast<size_t>(n), -4, 4, 23);
  std::vector<uint16_t> h(static_cast<size_t>(n));
  zotune::AlignedBuffer<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    zk::f32_to_f16(x.data(), h.data(), n);
    zk::f16_to_f32(h.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * n * 2);
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_CastF16)->Arg(1 << 22)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  try {
    benchmark::AddCustomContext("isa", zk::isa_name());
  } catch (const std::exception& e) {  // e.g. a bad ZOTUNE_ISA
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
  // Which OpenBLAS build got loaded (0 sequential, 1 pthreads, 2 OpenMP).
  benchmark::AddCustomContext("openblas", std::string(openblas_get_config()) + ", parallel=" +
                                              std::to_string(openblas_get_parallel()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
