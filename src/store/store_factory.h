// Choosing a parameter tier. The trainer and `zotune bench` build their store
// here from the --offload / --storage-dtype / --resident-blocks / --overlap options.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "store/param_store.h"

namespace zotune {

class Checkpoint;

enum class Offload : uint8_t {
  None,  // every weight fp32 in RAM (the baseline)
  Ram,   // weights in RAM in storage_dtype, fp32 working copies of resident blocks only
  Disk,  // weights streamed from files in work_dir, written back per block
};

struct StoreOptions {
  Offload offload = Offload::None;
  DType storage_dtype = DType::F32;
  int resident_blocks = 1;          // blocks with working copies at once (disk: ring slots)
  bool overlap = true;              // disk: prefetch / write-back threads overlap compute
  std::filesystem::path work_dir;   // disk: the working copy (inside the run's --out)
  // disk: updates the input checkpoint already holds (the step it was saved at)
  int64_t initial_updates = 0;
  bool verify_reads = false;        // disk: check file checksums on every read (--verify-reads)
  // RAM tiers: one stored θ per node, shared by its ranks (--share-node-weights,
  // store/node_shared_store.h); not with the disk tier.
  bool share_node_weights = false;
};

struct DiskStoreOptions;
// The disk tier's options from the CLI-level ones (make_store and the trainer's resume).
DiskStoreOptions disk_store_options(const StoreOptions& opt);

// `comm` (default: the single process) gives the node-shared memory of
// opt.share_node_weights; building that store is collective over its world.
class Comm;
std::unique_ptr<ParamStore> make_store(const Architecture& arch, const Checkpoint& ckpt, const StoreOptions& opt,
                                       Comm* comm = nullptr);

// Resume as a store operation. A tier may keep its own state of a run that
// runs ahead of the run's last checkpoint (the disk tier's working copy in
// opt.work_dir: a kill lands anywhere); keeps_run_state says whether `opt`
// names such a state, and continue_store reopens it and brings every unit to
// the end of `records` (records[i] = update i of the run; the crash catch-up
// of zo/replay.h). Other tiers rebuild from a checkpoint and the update log.
bool keeps_run_state(const StoreOptions& opt);
std::unique_ptr<ParamStore> continue_store(const Architecture& arch, const StoreOptions& opt, kernels::ZDist dist,
                                           float weight_decay, const std::vector<UpdateRecord>& records);

}  // namespace zotune
