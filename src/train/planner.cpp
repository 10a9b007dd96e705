#include "train/planner.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "base/threads.h"
#include "kernels/fma_peak.h"
#include "kernels/kernels.h"
#include "kernels/zo_kernels.h"

namespace zotune {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kPage = 4096;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t f32_bytes(int64_t n) { return static_cast<uint64_t>(n) * sizeof(float); }

}  // namespace

MachineConstants probe_machine(const fs::path& disk_dir) {
  MachineConstants m = assumed_machine_constants();
  {  // sgemm: a 512^3 product, best of 3 after a warm-up
    const int64_t n = 512;
    AlignedBuffer<float> a(static_cast<std::size_t>(n * n)), b(static_cast<std::size_t>(n * n)), c(static_cast<std::size_t>(n * n));
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = b[i] = static_cast<float>(i % 7) * 0.1f;
    double best = 1e9;
    for (int r = 0; r < 4; ++r) {
      const double t0 = now_s();
      kernels::sgemm(false, true, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
      if (r) best = std::min(best, now_s() - t0);
    }
    m.gemm_gflops = 2.0 * static_cast<double>(n * n * n) / best / 1e9;
  }
  {  // the cores' limit, which the sgemm rate above is judged against
    const kernels::FmaPeak f = kernels::measure_fma_peak(omp_get_max_threads(), 0.01, 2);
    m.fma_peak_gflops = f.gflops_n;
    m.fma_peak_gflops_1thread = f.gflops_1;
  }
  {  // the fused ZO pass and memcpy over 32 MB
    const int64_t n = int64_t{8} << 20;
    AlignedBuffer<float> w(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n)), q(static_cast<std::size_t>(n));
    w.zero();
    p.zero();
    q.zero();
    kernels::ZoUpdate upd{true, 1, 1e-6f, 0.5f, 0.0f};
    kernels::ZoPerturb pert{true, 2, 1e-3f};
    double best = 1e9;
    for (int r = 0; r < 2; ++r) {
      const double t0 = now_s();
      kernels::zo_update_perturb(0, kernels::ZDist::Gaussian, upd, pert, 0, n, w.data(), p.data(), q.data());
      best = std::min(best, now_s() - t0);
    }
    m.zo_params_per_s = static_cast<double>(n) / best;
    best = 1e9;
    for (int r = 0; r < 3; ++r) {
      const double t0 = now_s();
      std::memcpy(p.data(), w.data(), f32_bytes(n));
      best = std::min(best, now_s() - t0);
    }
    m.mem_gbps = 2.0 * static_cast<double>(f32_bytes(n)) / best / 1e9;  // read + write
  }
  if (!disk_dir.empty()) {
    // Write (fdatasync) and read back 128 MB, page cache dropped, in a file of
    // our own (O_EXCL, unique name). A directory we cannot write to leaves the
    // assumed disk constants (disk_measured = false): an estimate, not an error.
    const fs::path f = disk_dir / (".zotune-disk-probe-" + std::to_string(::getpid()));
    const std::size_t bytes = std::size_t{128} << 20;
    void* raw = std::aligned_alloc(kPage, bytes);
    if (!raw) throw std::bad_alloc();
    std::unique_ptr<void, void (*)(void*)> buf(raw, std::free);
    std::memset(raw, 1, bytes);
    const int fd = ::open(f.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      bool ok = true;
      double t0 = now_s();
      ok = ok && ::pwrite(fd, raw, bytes, 0) == static_cast<ssize_t>(bytes) && ::fdatasync(fd) == 0;
      const double tw = now_s() - t0;
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      t0 = now_s();
      ok = ok && ::pread(fd, raw, bytes, 0) == static_cast<ssize_t>(bytes);
      const double tr = now_s() - t0;
      ::close(fd);
      ::unlink(f.c_str());
      if (ok && tw > 0 && tr > 0) {
        m.disk_write_gbps = static_cast<double>(bytes) / tw / 1e9;
        m.disk_read_gbps = static_cast<double>(bytes) / tr / 1e9;
        m.disk_measured = true;
      }
    }
  }
  m.measured = true;
  return m;
}

fs::path existing_directory_of(const fs::path& p) {
  std::error_code ec;
  fs::path dir = fs::absolute(p, ec);
  while (!dir.empty() && !fs::is_directory(dir, ec) && dir != dir.parent_path()) dir = dir.parent_path();
  return dir;
}

MemoryPlan plan_run(const Architecture& arch, StoreOptions& so, int64_t batch, int64_t seq_len, uint64_t budget,
                    const MachineConstants& mc, const char* who, bool must_fit, int directions) {
  PlanInput in = plan_input(so, batch, seq_len, compute_threads());
  in.directions = directions;
  if (budget == 0) return plan_memory(arch, in, mc);
  PlanChoice choice = choose_plan(arch, budget, in, mc);
  std::fprintf(stderr, "%s: --memory-budget: %s\n", who, choice.why.c_str());
  if (!choice.fits && must_fit) fail("--memory-budget: ", choice.why);
  apply_plan_tier(choice.plan.input, so);
  return choice.plan;
}

}  // namespace zotune
