// One stored θ per node (--share-node-weights; DistZO2's shared master copy,
// issue #12): the ranks of a node keep the weights in one region they all map
// (dist/node_share.h: an MPI-3 shared window; one process: private memory), in
// the storage dtype (fp32, or bf16 / fp16 with --offload ram). Each rank keeps
// only its own working copies (fp32 W+ and W-; 16-bit: one lean copy, as
// LowBitRamStore) and its chunk buffers for the streamed tensors.
//
// The deferred update is applied by all ranks of the node together, unit by
// unit (a block's non-streamed tensors, or one chunk of rows of a streamed
// tensor): node barrier; each rank runs zo_apply's update over its own share
// of the unit's elements (the unit cut into node_size consecutive pieces);
// node barrier; then every rank makes its working copies of the whole unit
// from the updated stored values (zo_working_copy's arithmetic). z and the
// stochastic-rounding uniforms are counter-RNG values of (seed, tensor,
// element), so any cut gives the stored bits of a store that updates alone,
// and the working copies equal the fused pass's. The first barrier keeps a
// unit from being written while a rank still reads it (an evaluation on rank
// 0 only, the previous sweep); the second makes every share visible.
//
// Every call that applies an update is therefore collective over the node's
// ranks: they must make the same sequence of acquire / stream_rows calls with
// updates (the engine's sweeps, flush and replay on every rank). Calls without
// an update only read and may come from one rank alone (rank 0's evaluation).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "dist/node_share.h"
#include "store/param_store.h"

namespace zotune {

class Comm;

class NodeSharedStore final : public ParamStore {
 public:
  // Collective over the world (Comm::share_node). `storage`: F32, BF16 or F16;
  // each rank of the node converts its share of every tensor from the checkpoint.
  NodeSharedStore(const Architecture& arch, const Checkpoint& ckpt, DType storage, Comm& comm);
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;

  int node_rank() const { return share_->node_rank(); }
  int node_size() const { return share_->node_size(); }
  // Bytes of the shared region (every weight once, in the storage dtype).
  std::size_t shared_bytes() const { return share_->size(); }

 private:
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;

  unsigned char* stored(int id) const { return base_ + offset_[static_cast<std::size_t>(id)]; }
  // This rank's share [lo, hi) of a unit of n elements.
  std::pair<int64_t, int64_t> my_share(int64_t n) const;
  // The node applies work.update to the unit made of `pieces` (tensor id,
  // first element, count), concatenated: barrier, this rank's share, barrier.
  struct Piece {
    int id;
    int64_t first, n;
  };
  void update_unit(const BlockWork& work, const std::vector<Piece>& pieces);

  std::unique_ptr<NodeShare> share_;
  unsigned char* base_ = nullptr;
  std::vector<std::size_t> offset_;  // byte offset of each tensor in the region
  std::vector<Piece> pieces_;
  AlignedBuffer<float> slot_plus_, slot_minus_;  // the resident block's W+ / W- (16-bit: slot_plus_ only, lean)
  BlockWork work_;                               // of the resident block, without its update
  int made_ = 0;                                 // which working copy slot_plus_ holds (fp32: which direction's pair)
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;
};

}  // namespace zotune
