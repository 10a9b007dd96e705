#include "store/store_factory.h"

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
