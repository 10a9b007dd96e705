// The memory plan: what a ZO training step will hold in RAM, tier by tier, and
// roughly how long it will take — from config.json alone (the tensor table gives
// every size), without allocating anything proportional to the model, so
// `--dry-run` answers for a 175B configuration in milliseconds.
//
// The plan re-derives no buffer: it sums what each piece reports it will
// allocate, each function next to the allocations it stands for —
// store_footprint (store/store_footprint.h: weights, working copies, chunk
// buffers, disk staging and files), engine_footprint (train/engine.h: the
// batch's embedding rows, a chunk of logits, and the two passes'
// forward_pass_footprint from model/forward.h) — plus the process overhead.
// It lives in train/ because it sums pieces of train, store and model.
//
// Peaks, per tier (bytes):
//   weights      every parameter in RAM in the storage dtype (none for disk)
//   working      fp32 working copies of the resident block(s): fp32 RAM 2
//                (W+, W-), low-bit RAM 1 (lean), disk 1 per resident block
//   streaming    the store's chunk buffers of the streamed tensors, the batch's
//                embedding rows (two tables) and one chunk of logits
//   activations  two ForwardPasses (block and attention scratch shared)
//   staging      disk: resident_blocks + 2 block buffers (1 with --overlap off)
//   overhead     the process itself (binary, libraries, OpenBLAS/OpenMP
//                buffers, allocator slack): measured, see kProcessOverheadBytes
// The sum is the predicted peak RSS.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "io/json_file.h"
#include "model/architecture.h"
#include "store/store_factory.h"

namespace zotune {

struct PlanInput {
  int64_t batch = 1;      // B
  int64_t seq_len = 512;  // T
  Offload offload = Offload::None;
  DType storage_dtype = DType::F32;
  int resident_blocks = 1;
  bool overlap = true;
  int threads = 0;        // 0 = omp_get_max_threads()
  int directions = 1;     // directions this process runs per step (two passes' activations each)
  // --share-node-weights: the weights are one region per node, shared by its
  // ranks (store/node_shared_store.h); the per-rank figures stay the same.
  bool share_node_weights = false;
  // dtype of the input checkpoint (default: config's torch_dtype, else F32). The
  // stores drop its mapped pages after loading, so it is not counted.
  std::optional<DType> input_dtype;
};

// The plan input of a run with tier options `so` (threads: the compute threads),
// and the tier a plan chose written back into `so`.
PlanInput plan_input(const StoreOptions& so, int64_t batch, int64_t seq_len, int threads);
void apply_plan_tier(const PlanInput& chosen, StoreOptions& so);

// Machine constants for the time estimate.
struct MachineConstants {
  double gemm_gflops = 0;       // fp32 sgemm
  double zo_params_per_s = 0;   // fused update + perturbation (Gaussian), parameters/s
  double mem_gbps = 0;          // memcpy bandwidth, GB/s
  double disk_read_gbps = 0;    // block files, page cache bypassed
  double disk_write_gbps = 0;   // with fdatasync
  double fma_peak_gflops = 0;   // fp32 FMA chains in registers, all compute threads (0: not probed)
  double fma_peak_gflops_1thread = 0;
  bool measured = false;        // false: assumed defaults, not probed
  bool disk_measured = false;   // the disk figures were probed (else assumed)
};

// Conservative constants of a 2-core AVX-512 server, used without probing
// (train/planner.h probes the machine).
MachineConstants assumed_machine_constants();

struct TierBytes {
  uint64_t weights = 0, working = 0, streaming = 0, activations = 0, staging = 0, overhead = 0;
  uint64_t total() const { return weights + working + streaming + activations + staging + overhead; }
};

struct MemoryPlan {
  PlanInput input;
  TierBytes bytes;
  int64_t params = 0;
  uint64_t disk_bytes = 0;          // disk: size of the working copy
  // Time per step (seconds) and its parts.
  double compute_s = 0;             // GEMMs + attention of both passes
  double param_pass_s = 0;          // fused update + perturbation over every parameter
  double disk_s = 0;                // reading and writing every block once
  double step_s = 0;                // overlap: max(compute, disk) + param pass; else the sum
  bool machine_measured = false;
  bool disk_measured = false;
  MachineConstants machine;         // what the estimate was made with
};

// Overhead of a zotune process beyond the tiers above (binary, libraries,
// OpenMP/OpenBLAS, allocator): the peak RSS of 2-layer tiny-preset training
// runs minus their ~1.5-2.5 MB of tiers measured 8.7-9.3 MB (test_memory_plan,
// 2 threads), with the OpenBLAS backend; a backend adds its own
// (kernels::ComputeBackend::overhead_bytes).
constexpr uint64_t kProcessOverheadBytes = uint64_t{9} << 20;  // 9 MiB

MemoryPlan plan_memory(const Architecture& arch, const PlanInput& in, const MachineConstants& mc);

struct PlanChoice {
  MemoryPlan plan;
  bool fits = false;
  std::string why;  // one paragraph: what was chosen, what did not fit and why
};

// Picks the fastest tier that fits `budget_bytes`: fp32 in RAM, then bf16 in
// RAM, then disk (bf16, one resident block: measured the fastest). If nothing
// fits, the smallest plan with fits = false.
PlanChoice choose_plan(const Architecture& arch, uint64_t budget_bytes, const PlanInput& base,
                       const MachineConstants& mc);

// Bytes a node running `ranks_per_node` ranks of this plan holds: every rank's
// own tiers, and the weights once per node with --share-node-weights (else
// once per rank).
uint64_t plan_node_bytes(const MemoryPlan& p, int ranks_per_node);
std::string plan_table(const MemoryPlan& p);  // human-readable, one tier a line
Json plan_json(const MemoryPlan& p);
const char* offload_name(Offload o);

// This process's resident set now and at its peak (VmRSS / VmHWM), bytes.
uint64_t current_rss_bytes();
uint64_t peak_rss_bytes();
// Sets the peak (VmHWM) back to the current resident set (Linux clear_refs 5),
// so a measurement excludes what ran before, e.g. probe_machine's buffers.
// Returns false where the kernel does not allow it.
bool reset_peak_rss();

}  // namespace zotune
