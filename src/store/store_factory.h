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

enum class NodeSharing { Auto, Off, On };

class Comm;

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
  // store/node_shared_store.h); not with the disk tier. What the user asked
  // (node_sharing) becomes share_node_weights in resolve_node_sharing; a
  // share_node_weights set by a library caller stays set.
  NodeSharing node_sharing = NodeSharing::Auto;
  bool share_node_weights = false;
};

// One stored θ per node or one per rank. Auto (the default): shared when some
// node runs two or more of the world's ranks, the tier is a RAM tier, and
// every such node has room for the region (Comm::node_share_room); otherwise
// one copy per rank, with a line on stderr (rank 0) when only the room was
// missing. On: shared, and a clear error (naming /dev/shm, the bytes needed
// and free) on a node without room or with --offload disk. Off: one per rank.
// Collective over `comm` (one allgather of two numbers), so every rank of
// the world decides alike; call it after the tier is final (--memory-budget).
void resolve_node_sharing(const Architecture& arch, StoreOptions& opt, Comm& comm);
// The same choice for a plan of `ranks_per_node` ranks on each node (--dry-run:
// no world to ask, room assumed).
bool planned_node_sharing(const StoreOptions& opt, int ranks_per_node);

struct DiskStoreOptions;
// The disk tier's options from the CLI-level ones (make_store and the trainer's resume).
DiskStoreOptions disk_store_options(const StoreOptions& opt);

// `comm` (default: the single process) gives the node-shared memory of
// opt.share_node_weights; building that store is collective over its world.
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
