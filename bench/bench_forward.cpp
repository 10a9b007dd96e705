// Forward throughput of the gpt2-124m preset at batch 4 x 128 tokens next to
// two references measured in the same run, interleaved (FMA peak, sgemm peak,
// forward, ...) so machine noise hits all three; medians:
//   - the FMA peak (kernels/fma_peak.h): what the cores can do, whatever BLAS;
//   - the sgemm peak: what this BLAS does at the forward's own GEMM shapes.
// A forward at 90 % of the sgemm peak but 20 % of the FMA peak means the GEMM
// kernels, not the model code, are slow.
//
//   bench_forward [--threads 2] [--rounds 5] [--batch 4] [--seq 128]
//
// The forward is what `zotune forward` does: every block, logits of all B*T
// rows and the loss. FLOPs are counted from the shapes (forward_flops).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/philox.h"
#include "base/threads.h"
#include "base/timer.h"
#include "io/safetensors.h"
#include "kernels/compute_env.h"
#include "kernels/fma_peak.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "model/forward.h"
#include "model/model.h"

using namespace zotune;

namespace {

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return def;
}

// Best sgemm rate over the GEMM shapes of this forward (nn.Linear layout).
double sgemm_peak_gflops() {
  struct Shape { int64_t M, N, K; };
  const Shape shapes[] = {{512, 2304, 768}, {512, 3072, 768}, {512, 768, 3072}, {512, 50257, 768}};
  double best = 0;
  for (const auto& s : shapes) {
    AlignedBuffer<float> A(static_cast<size_t>(s.M * s.K)), W(static_cast<size_t>(s.N * s.K)), C(static_cast<size_t>(s.M * s.N));
    for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>(i % 7) * 0.1f;
    for (size_t i = 0; i < W.size(); ++i) W[i] = static_cast<float>(i % 5) * 0.1f;
    kernels::sgemm(false, true, s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), s.K, 0.0f, C.data(), s.N);
    std::vector<double> t;
    for (int r = 0; r < 3; ++r) {
      Stopwatch sw;
      kernels::sgemm(false, true, s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), s.K, 0.0f, C.data(), s.N);
      t.push_back(sw.seconds());
    }
    best = std::max(best, 2.0 * double(s.M) * double(s.N) * double(s.K) / median(t) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  kernels::ensure_compute_env(argv);
  const int threads = arg(argc, argv, "--threads", 2), rounds = arg(argc, argv, "--rounds", 5);
  const int64_t B = arg(argc, argv, "--batch", 4), T = arg(argc, argv, "--seq", 128);
  set_compute_threads(threads);
  const auto dir = std::filesystem::temp_directory_path() / ("zotune-bench-forward-" + std::to_string(::getpid()));
  try {
    init_checkpoint(architecture_preset("gpt2", "gpt2-124m"), DType::F32, 1, dir);
    LoadedModel m = load_model(dir);
    const int64_t V = m.arch->config().vocab_size;
    std::vector<int32_t> ids(static_cast<size_t>(B * T));
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = static_cast<int32_t>(Philox4x32::block({static_cast<uint32_t>(i), 0, 0, 7}, {1, 2})[0] % V);
    AlignedBuffer<float> logits(static_cast<size_t>(B * T * V));
    ForwardPass pass(*m.arch);
    auto forward = [&] {
      pass.start(ids.data(), nullptr, B, T);
      pass.run_body(m.weights->ptrs());
      pass.all_logits(m.weights->ptrs(), logits.data());
      return next_token_loss(logits.data(), ids.data(), nullptr, B, T, V);
    };
    const double tokens = double(B * T);
    const double flops = forward_flops(*m.arch, B, T);
    forward();  // first touch
    std::vector<double> fwd, peak, fma;
    for (int r = 0; r < rounds; ++r) {
      fma.push_back(kernels::measure_fma_peak(threads).gflops_n);
      peak.push_back(sgemm_peak_gflops());
      Stopwatch sw;
      forward();
      fwd.push_back(sw.seconds());
    }
    const double f = median(fwd), p = median(peak), fp = median(fma), achieved = flops / f / 1e9;
    const std::string gemm = kernels::compute_backend().name();
    std::printf("gpt2-124m forward, batch %lld x %lld tokens, %d threads, ISA %s, gemm %s\n", (long long)B,
                (long long)T, compute_threads(), kernels::isa_name(), gemm.c_str());
    std::printf("  forward          %.3f s (median of %d)   %.0f tokens/s\n", f, rounds, tokens / f);
    std::printf("  achieved         %.1f GFLOP/s (%.1f GFLOP per forward)\n", achieved, flops / 1e9);
    std::printf("  FMA peak         %.1f GFLOP/s (%d threads, independent FMA chains in registers)\n", fp, threads);
    std::printf("  sgemm peak       %.1f GFLOP/s (best GPT-2 GEMM shape, same BLAS and threads)\n", p);
    std::printf("  forward / FMA peak    %.1f %%\n", 100.0 * achieved / fp);
    std::printf("  forward / sgemm peak  %.1f %%\n", 100.0 * achieved / p);
    std::printf("{\"forward_sec_median\": %.6f, \"tokens_per_sec\": %.1f, \"gflops\": %.2f, \"sgemm_peak_gflops\": %.2f, "
                "\"fraction_of_peak\": %.4f, \"fma_peak_gflops\": %.2f, \"fraction_of_fma_peak\": %.4f, "
                "\"gemm\": \"%s\"}\n",
                f, tokens / f, achieved, p, achieved / p, fp, achieved / fp, gemm.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: %s\n", e.what());
    std::filesystem::remove_all(dir);
    return 1;
  }
  std::filesystem::remove_all(dir);
  return 0;
}
