#include "store/memory_plan.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "kernels/compute_env.h"
#include "kernels/fma_peak.h"
#include "kernels/kernels.h"
#include "model/forward.h"
#include "kernels/zo_kernels.h"
#include "store/param_store.h"

namespace zotune {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kPage = 4096;

uint64_t f32_bytes(int64_t n) { return static_cast<uint64_t>(n) * sizeof(float); }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Block sizes as the stores see them: streamed tensors (the token embedding and
// the lm_head) are not part of any block's working copy.
struct BlockSizes {
  std::vector<int64_t> numel;  // per block, streamed tensors excluded (one entry per block: small)
  int64_t max_block = 0;
  std::vector<int> streamed;   // distinct ids
};

BlockSizes block_sizes(const Architecture& arch) {
  BlockSizes s;
  s.numel.assign(static_cast<std::size_t>(arch.num_blocks()), 0);
  for (int id : {arch.token_embedding_id(), arch.head_weight_id()})
    if (id >= 0 && std::find(s.streamed.begin(), s.streamed.end(), id) == s.streamed.end()) s.streamed.push_back(id);
  const auto& table = arch.tensors();
  for (std::size_t i = 0; i < table.size(); ++i)
    if (std::find(s.streamed.begin(), s.streamed.end(), static_cast<int>(i)) == s.streamed.end())
      s.numel[static_cast<std::size_t>(table[i].block)] += table[i].numel();
  for (int64_t n : s.numel) s.max_block = std::max(s.max_block, n);
  return s;
}

}  // namespace

const char* offload_name(Offload o) {
  switch (o) {
    case Offload::None: return "none";
    case Offload::Ram: return "ram";
    case Offload::Disk: return "disk";
  }
  return "?";
}

PlanInput plan_input(const StoreOptions& so, int64_t batch, int64_t seq_len, int threads) {
  PlanInput in;
  in.batch = batch;
  in.seq_len = seq_len;
  in.offload = so.offload;
  in.storage_dtype = so.storage_dtype;
  in.resident_blocks = so.resident_blocks;
  in.overlap = so.overlap;
  in.threads = threads;
  return in;
}

void apply_plan_tier(const PlanInput& chosen, StoreOptions& so) {
  so.offload = chosen.offload;
  so.storage_dtype = chosen.storage_dtype;
  so.resident_blocks = chosen.resident_blocks;
}

MachineConstants assumed_machine_constants() {
  MachineConstants m;
  m.gemm_gflops = 100;
  m.zo_params_per_s = 150e6;
  m.mem_gbps = 8;
  m.disk_read_gbps = 0.5;
  m.disk_write_gbps = 0.3;
  return m;
}

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

MemoryPlan plan_memory(const Architecture& arch, const PlanInput& in, const MachineConstants& mc) {
  check(in.batch >= 1 && in.seq_len >= 1, "memory plan: batch and sequence length must be positive");
  check(in.resident_blocks >= 1, "memory plan: --resident-blocks must be at least 1");
  const auto& c = arch.config();
  const BlockSizes s = block_sizes(arch);
  MemoryPlan p;
  p.input = in;
  p.machine_measured = mc.measured;
  p.disk_measured = mc.disk_measured;
  p.machine = mc;
  for (const auto& t : arch.tensors()) p.params += t.numel();
  const bool disk = in.offload == Offload::Disk;
  const bool lowbit = in.offload != Offload::None && in.storage_dtype != DType::F32;
  const uint64_t dsize = lowbit ? dtype_size(in.storage_dtype) : 4;

  // Weights.
  if (!disk) p.bytes.weights = static_cast<uint64_t>(p.params) * dsize;

  // Working copies of the resident block(s).
  const uint64_t block_f32 = f32_bytes(s.max_block);
  if (disk) p.bytes.working = static_cast<uint64_t>(in.resident_blocks) * block_f32;  // lean
  else p.bytes.working = (lowbit ? 1 : 2) * block_f32;

  // Streamed tensors: chunk buffers of the store, embedding rows, one chunk of logits.
  const int64_t R = in.batch * in.seq_len, V = c.vocab_size, Wd = arch.head_width();
  const auto& emb = arch.tensors()[static_cast<std::size_t>(arch.token_embedding_id())];
  const int64_t Ce = emb.numel() / emb.shape[0];
  const int64_t n = R;  // scored rows: at most one per token
  const int64_t chunk_e = stream_chunk_rows(Ce, 0, V) * Ce, chunk_h = stream_chunk_rows(Wd, n, V) * Wd;
  const int64_t chunk = std::max(chunk_e, chunk_h);
  uint64_t store_chunks = 2 * f32_bytes(chunk_h);  // W+, W- of a head chunk
  if (lowbit) store_chunks += f32_bytes(chunk);     // theta, upcast
  // disk: three I/O buffers in the storage dtype (read ahead, compute, write behind)
  if (disk) store_chunks += 3 * (static_cast<uint64_t>(chunk) * dsize + 2 * kPage);
  p.bytes.streaming = store_chunks + 2 * f32_bytes(std::min(R, V) * Ce) + f32_bytes(n * stream_chunk_rows(Wd, n, V));

  // Activations of the two passes.
  const int threads = in.threads > 0 ? in.threads : omp_get_max_threads();
  kernels::AttentionShape as{in.batch, in.seq_len, in.seq_len, c.num_heads, std::max<int64_t>(c.num_kv_heads, 1),
                             c.head_dim, 0, 0, 0, 0, 1.0f};
  // Each pass has its residual stream and head hidden rows; block scratch is shared.
  const int64_t per_pass = R * c.hidden_size + n * Wd;
  p.bytes.activations = 2 * f32_bytes(per_pass) + f32_bytes(arch.scratch_floats(R)) +
                        f32_bytes(kernels::attention_scratch_floats(as, threads));

  // Disk: staging buffers of blocks; the working copy's files.
  auto file_bytes = [&](int64_t numel) {
    return kPage + (static_cast<uint64_t>(numel) * dsize + kPage - 1) / kPage * kPage;
  };
  if (disk) {
    // Overlap keeps resident + 2 blocks staged (reading ahead, in use, writing
    // behind); without it one staged block is read, used and written in turn.
    const int stages = in.overlap ? in.resident_blocks + 2 : 1;
    p.bytes.staging = static_cast<uint64_t>(stages) * file_bytes(s.max_block);
    for (int64_t b : s.numel) p.disk_bytes += file_bytes(b);
    for (int id : s.streamed) p.disk_bytes += file_bytes(arch.tensors()[static_cast<std::size_t>(id)].numel());
  }
  p.bytes.overhead = kProcessOverheadBytes;

  // Time.
  p.compute_s = 2.0 * forward_flops(arch, in.batch, in.seq_len) / (mc.gemm_gflops * 1e9);
  p.param_pass_s = static_cast<double>(p.params) / mc.zo_params_per_s;
  if (disk) {
    // Read every file once and write it back once; a tied embedding is read a second time by the head.
    uint64_t read = p.disk_bytes;
    if (arch.head_weight_id() == arch.token_embedding_id()) read += file_bytes(emb.numel());
    p.disk_s = static_cast<double>(read) / (mc.disk_read_gbps * 1e9) +
               static_cast<double>(p.disk_bytes) / (mc.disk_write_gbps * 1e9);
  }
  p.step_s = disk && in.overlap ? std::max(p.compute_s + p.param_pass_s, p.disk_s)
                                : p.compute_s + p.param_pass_s + p.disk_s;
  return p;
}

PlanChoice choose_plan(const Architecture& arch, uint64_t budget, const PlanInput& base, const MachineConstants& mc) {
  std::vector<PlanInput> candidates;
  PlanInput in = base;
  in.offload = Offload::None;
  in.storage_dtype = DType::F32;
  in.resident_blocks = 1;
  candidates.push_back(in);
  in.offload = Offload::Ram;
  in.storage_dtype = DType::BF16;
  candidates.push_back(in);
  in.offload = Offload::Disk;
  in.storage_dtype = DType::BF16;
  // One resident block: more blocks in flight measured slower here (opt-125m
  // bf16, 4x128: 1.44 s/step with 2 against 1.36 s with 1; I/O contention on
  // two cores) and only add memory.
  in.resident_blocks = 1;
  candidates.push_back(in);
  auto gb = [](uint64_t b) {
    std::ostringstream os;
    os.precision(3);
    os << static_cast<double>(b) / 1e9 << " GB";
    return os.str();
  };
  std::ostringstream why;
  why << "budget " << gb(budget) << ": ";
  PlanChoice best;
  for (const auto& cand : candidates) {
    MemoryPlan p = plan_memory(arch, cand, mc);
    const std::string name = std::string("--offload ") + offload_name(cand.offload) +
                             (cand.offload != Offload::None ? " --storage-dtype bf16" : "") +
                             (cand.offload == Offload::Disk ? " --resident-blocks " + std::to_string(cand.resident_blocks) : "");
    if (p.bytes.total() <= budget) {
      why << "chose " << name << " (peak " << gb(p.bytes.total()) << ", ~" << p.step_s << " s/step)";
      if (cand.offload != Offload::None) why << "; bf16 storage rounds updates stochastically";
      return {p, true, why.str()};
    }
    why << name << " needs " << gb(p.bytes.total()) << "; ";
    best = {p, false, ""};
  }
  why << "nothing fits: the smallest plan (disk, 1 resident block) needs " << gb(best.plan.bytes.total())
      << "; lower --batch-size or --max-length (activations: " << gb(best.plan.bytes.activations) << ")";
  best.why = why.str();
  return best;
}

std::string plan_table(const MemoryPlan& p) {
  auto mb = [](uint64_t b) {
    char s[32];
    std::snprintf(s, sizeof s, "%12.1f MB", static_cast<double>(b) / 1048576.0);
    return std::string(s);
  };
  std::ostringstream os;
  os << "memory plan: --offload " << offload_name(p.input.offload) << ", storage "
     << dtype_name(p.input.offload == Offload::None ? DType::F32 : p.input.storage_dtype) << ", resident blocks "
     << p.input.resident_blocks << ", B=" << p.input.batch << " T=" << p.input.seq_len << ", " << p.params
     << " parameters\n";
  os << "  weights (RAM)         " << mb(p.bytes.weights) << "\n";
  os << "  working copies (fp32) " << mb(p.bytes.working) << "\n";
  os << "  streamed chunks       " << mb(p.bytes.streaming) << "\n";
  os << "  activations (2 pass)  " << mb(p.bytes.activations) << "\n";
  os << "  disk staging          " << mb(p.bytes.staging) << "\n";
  os << "  process overhead      " << mb(p.bytes.overhead) << "\n";
  os << "  peak RSS (predicted)  " << mb(p.bytes.total()) << "\n";
  if (p.input.offload == Offload::Disk) os << "  working copy on disk  " << mb(p.disk_bytes) << "\n";
  char t[160];
  std::snprintf(t, sizeof t, "  time per step ~%.3g s (compute %.3g s, parameter pass %.3g s, disk %.3g s; %s)\n",
                p.step_s, p.compute_s, p.param_pass_s, p.disk_s,
                !p.machine_measured ? "assumed machine"
                : p.input.offload == Offload::Disk && !p.disk_measured ? "measured machine, assumed disk"
                                                                        : "measured machine");
  os << t;
  const kernels::ComputeInfo ci = kernels::compute_info();
  std::snprintf(t, sizeof t, "  compute: gemm %s (sgemm %.0f GFLOP/s, FMA peak %.0f GFLOP/s), kernels %s\n",
                ci.gemm.c_str(), p.machine.gemm_gflops, p.machine.fma_peak_gflops, ci.isa.c_str());
  os << t;
  os << "  bf16 hardware: AVX512-BF16 " << (ci.avx512_bf16 ? "yes" : "no") << ", AMX " << (ci.amx ? "yes" : "no")
     << " (compute is fp32: no bf16 backend yet)\n";
  return os.str();
}

Json plan_json(const MemoryPlan& p) {
  Json j;
  j["offload"] = offload_name(p.input.offload);
  j["storage_dtype"] = dtype_name(p.input.offload == Offload::None ? DType::F32 : p.input.storage_dtype);
  j["resident_blocks"] = p.input.resident_blocks;
  j["overlap"] = p.input.overlap;
  j["batch"] = p.input.batch;
  j["seq_len"] = p.input.seq_len;
  j["params"] = p.params;
  j["bytes"] = {{"weights", p.bytes.weights},         {"working", p.bytes.working}, {"streaming", p.bytes.streaming},
                {"activations", p.bytes.activations}, {"staging", p.bytes.staging},
                {"overhead", p.bytes.overhead},       {"total", p.bytes.total()}};
  j["disk_bytes"] = p.disk_bytes;
  j["seconds"] = {{"compute", p.compute_s}, {"param_pass", p.param_pass_s}, {"disk", p.disk_s}, {"step", p.step_s}};
  j["machine_measured"] = p.machine_measured;
  j["disk_measured"] = p.disk_measured;
  j["machine"] = {{"sgemm_gflops", p.machine.gemm_gflops},
                  {"fma_peak_gflops", p.machine.fma_peak_gflops},
                  {"fma_peak_gflops_1thread", p.machine.fma_peak_gflops_1thread},
                  {"zo_params_per_s", p.machine.zo_params_per_s},
                  {"mem_gbps", p.machine.mem_gbps}};
  const kernels::ComputeInfo ci = kernels::compute_info();
  j["compute"] = {{"gemm", ci.gemm},
                  {"isa", ci.isa},
                  {"cpu_features", ci.cpu_features},
                  {"avx512_bf16", ci.avx512_bf16},
                  {"amx", ci.amx}};
  return j;
}

namespace {
uint64_t status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::stoull(line.substr(n + 1)) * 1024;
  return 0;
}
}  // namespace

uint64_t current_rss_bytes() { return status_kb("VmRSS"); }
uint64_t peak_rss_bytes() { return status_kb("VmHWM"); }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace zotune
