#include "store/store_factory.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "dist/comm.h"
#include "io/safetensors.h"
#include "store/disk_store.h"
#include "store/lowbit_store.h"
#include "store/node_shared_store.h"

namespace zotune {

DiskStoreOptions disk_store_options(const StoreOptions& opt) {
  DiskStoreOptions d;
  d.work_dir = opt.work_dir;
  d.resident_blocks = opt.resident_blocks;
  d.overlap = opt.overlap;
  d.initial_updates = opt.initial_updates;
  d.storage_dtype = opt.storage_dtype;
  d.verify_reads = opt.verify_reads;
  return d;
}

std::unique_ptr<ParamStore> make_store(const Architecture& arch, const Checkpoint& ckpt, const StoreOptions& opt,
                                       Comm* comm) {
  if (opt.share_node_weights) {
    check(opt.offload != Offload::Disk,
          "--share-node-weights keeps one copy of the weights in RAM per node; it does not combine with --offload disk");
    check(opt.offload == Offload::Ram || opt.storage_dtype == DType::F32, "--offload none keeps fp32 weights; use --offload ram for --storage-dtype ",
          dtype_name(opt.storage_dtype));
    return std::make_unique<NodeSharedStore>(arch, ckpt, opt.storage_dtype, comm ? *comm : single_process_comm());
  }
  if (opt.offload == Offload::None || (opt.offload == Offload::Ram && opt.storage_dtype == DType::F32)) {
    check(opt.storage_dtype == DType::F32, "--offload none keeps fp32 weights; use --offload ram for --storage-dtype ",
          dtype_name(opt.storage_dtype));
    return std::make_unique<RamStore>(arch, ckpt);
  }
  if (opt.offload == Offload::Disk) {
    return std::make_unique<DiskStore>(arch, ckpt, disk_store_options(opt));
  }
  if (opt.offload == Offload::Ram && (opt.storage_dtype == DType::BF16 || opt.storage_dtype == DType::F16))
    return std::make_unique<LowBitRamStore>(arch, ckpt, opt.storage_dtype);
  fail("--offload ram with --storage-dtype ", dtype_name(opt.storage_dtype), " is not available");
}

void resolve_node_sharing(const Architecture& arch, StoreOptions& opt, Comm& comm) {
  const std::size_t need = NodeSharedStore::region_bytes(arch, opt.storage_dtype, comm.world());
  const std::size_t room = comm.node_share_room();
  // Every rank's node size and whether its node has room: all decide alike.
  const double mine[2] = {static_cast<double>(comm.ranks_on_node()), room >= need ? 1.0 : 0.0};
  const std::vector<double> all = comm.allgather(mine);
  int most = 1, short_rank = -1;
  for (std::size_t r = 0; r + 1 < all.size(); r += 2) {
    most = std::max(most, static_cast<int>(all[r]));
    if (all[r + 1] == 0.0 && short_rank < 0) short_rank = static_cast<int>(r / 2);
  }
  const auto mb = [](std::size_t b) { return std::to_string((b + (1u << 20) - 1) >> 20) + " MB"; };
  const std::string short_of = "the node's one copy of the weights needs " + mb(need) +
                               " of shared memory (/dev/shm), and the node of rank " + std::to_string(short_rank) +
                               " has less free";
  switch (opt.node_sharing) {
    case NodeSharing::Off:
      opt.share_node_weights = false;
      return;
    case NodeSharing::On:
      check(opt.offload != Offload::Disk,
            "--share-node-weights keeps one copy of the weights in RAM per node; it does not combine with --offload disk");
      if (short_rank >= 0)
        fail("--share-node-weights: ", short_of, short_rank == comm.rank() ? " (" + mb(room) + " here)" : std::string(),
             "; enlarge /dev/shm (docker run --shm-size) or run with --no-share-node-weights");
      opt.share_node_weights = true;
      return;
    case NodeSharing::Auto:
      if (opt.share_node_weights || !planned_node_sharing(opt, most)) return;
      if (short_rank >= 0) {
        if (comm.rank() == 0)
          std::fprintf(stderr, "zotune: %s; every rank keeps its own copy (--no-share-node-weights says so quietly)\n",
                       short_of.c_str());
        return;
      }
      opt.share_node_weights = true;
      return;
  }
}

bool planned_node_sharing(const StoreOptions& opt, int ranks_per_node) {
  switch (opt.node_sharing) {
    case NodeSharing::Off: return false;
    case NodeSharing::On: return true;
    case NodeSharing::Auto: break;
  }
  return opt.share_node_weights || (opt.offload != Offload::Disk && ranks_per_node >= 2);
}

bool keeps_run_state(const StoreOptions& opt) {
  return opt.offload == Offload::Disk && DiskStore::has_working_copy(opt.work_dir);
}

std::unique_ptr<ParamStore> continue_store(const Architecture& arch, const StoreOptions& opt, kernels::ZDist dist,
                                           float weight_decay, const std::vector<UpdateRecord>& records) {
  check(keeps_run_state(opt), opt.work_dir.string(), ": no working copy of the run to continue");
  auto disk = DiskStore::open_existing(arch, disk_store_options(opt));
  disk->catch_up(dist, weight_decay, records);
  return disk;
}

}  // namespace zotune
