// The low-bit RAM tier: peak memory of a few ZO steps with bf16 storage
// against the fp32 RamStore, and the throughput of the fused 16-bit kernel.
//
// Peak RSS (each store in its own process, batch 1 x 32 tokens, 2 ZO steps):
//   zotune init --arch qwen3 --preset qwen3-0.6b --out /tmp/q06
//   zotune init --arch opt --preset opt-125m --out /tmp/opt125
//   build-*/bench/bench_zo_lowbit --rss /tmp/q06 /tmp/opt125
// prints one JSON object per model: peak RSS (VmHWM) after loading and after
// the steps for fp32 and bf16 storage, and their ratio.
//
// Kernel throughput (Google Benchmark; arguments: elements, threads):
//   build-*/bench/bench_zo_lowbit --benchmark_filter=BM_
// items/s = elements/s; bytes/s counts parameter bytes read + written plus the
// fp32 working copies written (2 + 2 + 8 B per element for update + perturb).
#include <benchmark/benchmark.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/zo_kernels.h"
#include "kernels/zo_lowbit.h"
#include "model/architecture.h"
#include "store/store_factory.h"
#include "train/engine.h"

namespace zk = zotune::kernels;

namespace {

// ---- kernel throughput

constexpr int64_t kElements = int64_t{32} << 20;

void BM_LowBitUpdatePerturb(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<uint16_t> w(static_cast<size_t>(n), 0x3C00);
  std::vector<float> plus(static_cast<size_t>(n), 0.0f), minus(static_cast<size_t>(n), 0.0f);
  uint64_t t = 0;
  for (auto _ : state) {
    const zk::ZoUpdate upd{true, 100 + t, 1e-6f, 0.5f, 0.0f};
    const zk::ZoPerturb pert{true, 101 + t, 1e-3f};
    zk::zo_lowbit_update_perturb(0, zk::LowBitFormat::BF16, zk::ZDist::Gaussian, upd, pert, 0, n, w.data(),
                                 plus.data(), minus.data(), nullptr);
    benchmark::DoNotOptimize(w.data());
    ++t;
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 12);
  state.SetLabel(zk::isa_name());
}
BENCHMARK(BM_LowBitUpdatePerturb)->Args({kElements, 1})->Args({kElements, 2})->UseRealTime()->Unit(benchmark::kMillisecond);

// The fp32 kernel on the same shape, for comparison (4 B read + 12 B written).
void BM_Fp32UpdatePerturb(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> w(static_cast<size_t>(n), 1.0f), plus(static_cast<size_t>(n)), minus(static_cast<size_t>(n));
  uint64_t t = 0;
  for (auto _ : state) {
    const zk::ZoUpdate upd{true, 100 + t, 1e-6f, 0.5f, 0.0f};
    const zk::ZoPerturb pert{true, 101 + t, 1e-3f};
    zk::zo_update_perturb(0, zk::ZDist::Gaussian, upd, pert, 0, n, w.data(), plus.data(), minus.data());
    benchmark::DoNotOptimize(w.data());
    ++t;
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 16);
  state.SetLabel(zk::isa_name());
}
BENCHMARK(BM_Fp32UpdatePerturb)->Args({kElements, 1})->Args({kElements, 2})->UseRealTime()->Unit(benchmark::kMillisecond);

// Eval: a plain upcast of the stored block into its fp32 working copy.
void BM_LowBitUpcast(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<uint16_t> w(static_cast<size_t>(n), 0x3C00);
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  for (auto _ : state) {
    zk::zo_lowbit_update_perturb(0, zk::LowBitFormat::BF16, zk::ZDist::Gaussian, {}, {}, 0, n, w.data(), nullptr,
                                 nullptr, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * 6);
  state.SetLabel(zk::isa_name());
}
BENCHMARK(BM_LowBitUpcast)->Args({kElements, 1})->Args({kElements, 2})->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- peak memory, one store per process

// A /proc/self/status field in kB (VmHWM: peak resident set, VmRSS: now).
long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return -1;
}

// Loads `model` into the store `dtype` names, runs `steps` ZO steps on one
// sequence of 32 tokens and prints one JSON line.
int rss_child(const std::string& model, const std::string& dtype, int steps) {
  using namespace zotune;
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  StoreOptions so;
  so.offload = dtype == "fp32" ? Offload::None : Offload::Ram;
  so.storage_dtype = *dtype_from_cli(dtype);
  const auto t0 = std::chrono::steady_clock::now();
  auto store = make_store(*arch, ckpt, so);
  const auto t1 = std::chrono::steady_clock::now();
  const long load_hwm = status_kb("VmHWM"), load_rss = status_kb("VmRSS");
  const int64_t V = arch->config().vocab_size;
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < 32; ++t) ids.push_back(static_cast<int32_t>((t * 7919 + 13) % V));
  const Batch batch = language_model_batch(std::move(ids), 1, 32);
  MezoOptions opt;
  opt.lr = 1e-6f;
  ZoEngine engine(*arch, *store, opt, 1);
  double loss = 0;
  for (int t = 0; t < steps; ++t) loss = engine.step(t, steps, batch).loss_plus;
  const auto t2 = std::chrono::steady_clock::now();
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double step_s = std::chrono::duration<double>(t2 - t1).count() / steps;
  std::printf(
      "{\"store\": \"%s\", \"params\": %lld, \"load_peak_rss_mb\": %.1f, \"load_rss_mb\": %.1f, "
      "\"peak_rss_mb\": %.1f, \"load_s\": %.2f, \"step_s\": %.3f, \"loss_plus\": %.5f}\n",
      dtype.c_str(), static_cast<long long>(store->total_params()), load_hwm / 1024.0, load_rss / 1024.0,
      status_kb("VmHWM") / 1024.0, load_s, step_s, loss);
  return 0;
}

// Runs this program as a child for one (model, dtype) and returns its JSON line.
std::string run_child(const std::string& model, const std::string& dtype) {
  const std::string cmd = "'/proc/" + std::to_string(getpid()) + "/exe' --rss-child '" + model + "' " + dtype;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

double field(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  return at == std::string::npos ? -1 : std::stod(json.substr(at + key.size() + 4));
}

int rss_parent(const std::vector<std::string>& models) {
  int rc = 0;
  for (const std::string& m : models) {
    const std::string f32 = run_child(m, "fp32"), b16 = run_child(m, "bf16");
    if (f32.empty() || b16.empty()) {
      std::fprintf(stderr, "bench_zo_lowbit: a child failed for %s\n", m.c_str());
      rc = 1;
      continue;
    }
    const double ratio = field(b16, "peak_rss_mb") / field(f32, "peak_rss_mb");
    std::printf("{\"model\": \"%s\", \"fp32\": %s, \"bf16\": %s, \"peak_rss_ratio_bf16_over_fp32\": %.3f}\n",
                m.c_str(), f32.c_str(), b16.c_str(), ratio);
    std::fflush(stdout);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 4 && std::strcmp(argv[1], "--rss-child") == 0) return rss_child(argv[2], argv[3], 2);
    if (argc >= 2 && std::strcmp(argv[1], "--rss") == 0) return rss_parent({argv + 2, argv + argc});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_zo_lowbit: %s\n", e.what());
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
