#include "train/memory_plan.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "kernels/gemm.h"
#include "kernels/compute_env.h"
#include "kernels/kernels.h"
#include "kernels/zo_kernels.h"
#include "model/forward.h"
#include "store/param_store.h"
#include "store/store_footprint.h"
#include "train/engine.h"

namespace zotune {

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
  in.share_node_weights = so.share_node_weights;
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

MemoryPlan plan_memory(const Architecture& arch, const PlanInput& in, const MachineConstants& mc) {
  check(in.batch >= 1 && in.seq_len >= 1, "memory plan: batch and sequence length must be positive");
  check(in.resident_blocks >= 1, "memory plan: --resident-blocks must be at least 1");
  MemoryPlan p;
  p.input = in;
  p.machine_measured = mc.measured;
  p.disk_measured = mc.disk_measured;
  p.machine = mc;
  for (const auto& t : arch.tensors()) p.params += t.numel();
  const bool disk = in.offload == Offload::Disk;

  // The sum of what each piece reports it will allocate: the store (weights,
  // working copies, its chunk buffers, disk staging) and the engine (two
  // passes' activations per direction, the batch's embedding rows, a chunk of logits).
  StoreOptions so;
  apply_plan_tier(in, so);
  so.overlap = in.overlap;
  const StoreFootprint store = store_footprint(arch, so);
  const int threads = in.threads > 0 ? in.threads : omp_get_max_threads();
  const EngineFootprint engine = engine_footprint(arch, in.batch, in.seq_len, threads, in.directions);
  p.bytes.weights = store.weights;
  p.bytes.working = store.working;
  p.bytes.streaming = store.stream_chunks + engine.streaming;
  p.bytes.activations = engine.activations;
  p.bytes.staging = store.staging;
  p.disk_bytes = store.disk_bytes;
  p.bytes.overhead = kProcessOverheadBytes + kernels::compute_backend().overhead_bytes();

  // Time.
  p.compute_s = 2.0 * forward_flops(arch, in.batch, in.seq_len) / (mc.gemm_gflops * 1e9);
  p.param_pass_s = static_cast<double>(p.params) / mc.zo_params_per_s;
  if (disk)
    p.disk_s = static_cast<double>(store.disk_read_bytes_per_step) / (mc.disk_read_gbps * 1e9) +
               static_cast<double>(store.disk_bytes) / (mc.disk_write_gbps * 1e9);
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

uint64_t plan_node_bytes(const MemoryPlan& p, int ranks_per_node) {
  const auto R = static_cast<uint64_t>(std::max(ranks_per_node, 1));
  const uint64_t own = p.bytes.total() - p.bytes.weights;
  return R * own + (p.input.share_node_weights ? 1 : R) * p.bytes.weights;
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
  os << (p.input.share_node_weights ? "  weights (RAM, 1/node) " : "  weights (RAM)         ") << mb(p.bytes.weights)
     << "\n";
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
  if (p.input.share_node_weights) j["share_node_weights"] = true;
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
