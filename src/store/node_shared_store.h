// One stored θ per node (--share-node-weights; DistZO2's shared master copy,
// issue #12): the ranks of a node keep the weights in one region they all map
// (dist/node_share.h: an MPI-3 shared window; one process: private memory), in
// the storage dtype (fp32, or bf16 / fp16 with --offload ram), and after it
// the working-copy slots of a block (two) and of a streamed chunk (four),
// once per node.
// Private working copies (fp32 W+ and W-; 16-bit: one lean copy, as
// LowBitRamStore) and chunk buffers serve reads and the fallback below.
//
// The step's parameter pass is split over the node's ranks, unit by unit (a
// block's non-streamed tensors, or one chunk of rows of a streamed tensor).
// A rank's part of a unit is the fused zo_apply over some of its elements: the
// deferred update, written back, and this step's working copies W+ / W- of
// those elements, one z draw per element, written into working-copy slots
// that are also in the shared region; then every rank reads the whole unit's
// copies there. z and the stochastic-rounding uniforms are counter-RNG values
// of (seed, tensor, element), so any cut gives the stored bits and the copies
// of a store that works alone. Two ways to cut:
//   barriers (the first perturbing unit, and always when the ranks of the
//   node perturb differently): node barrier; each rank does its fixed share
//   (the unit cut into node_size consecutive pieces); node barrier. The first
//   barrier keeps the unit and its slots from being written while a rank
//   still reads them; the second makes every share visible.
//   claims (once the ranks have shown they perturb alike): no barrier. The
//   units of a kind take turns in its slots (2 block slots: a block's copies
//   are read until the next block's pass; 4 chunk slots: a chunk's only
//   until the next pass). A unit that writes slots waits only until every
//   rank has entered the unit after which nobody reads them (the block
//   before; the pass after the chunk 4 chunks ago); one that writes θ alone
//   waits for nobody. Then the ranks take claims of the unit (a few thousand
//   elements each, from a counter in the region) until none is left, and
//   wait until all claims are done. A rank that finished its forward first
//   does most of the pass instead of waiting at a barrier for the other, so
//   the ranks of a node need not keep in step within a sweep.
// So the ranks do 1/node_size of the pass over parameters between them.
// Nothing but the pass writes θ, and between sweeps the engine's collectives
// (the step's losses, flush) keep the ranks together: a rank that reads θ
// alone (rank 0's evaluation or checkpoint, after a flush) may see another
// rank enter the next sweep's first unit, which then only makes copies.
// Shared copies need every rank of the node to perturb alike (the same seed,
// eps, sidedness): true in data and perturbation parallelism, not for ranks of
// different direction groups. With several directions per rank a block's
// copies are private too (each rank makes the later pairs from the stored
// values, ParamStore::pair_copy); a streamed chunk's shared copies are
// direction 0's, the engine makes the others from its θ. Each rank posts its
// call's work in a small table in the region when it enters a unit. With
// barriers, all read the table after the first and agree: when the works
// differ (or a chunk is larger than the slots), the shares carry the update
// only and every rank makes its own copies of the whole unit after the second
// barrier (zo_working_copy's arithmetic, each rank's private slots). The
// first unit whose copies every rank offers to share decides the way for the
// rest of the store's life (every rank reads the same table, so all switch
// at the same unit): claims when the works agree, barriers otherwise. With
// claims a rank checks the others' posts of the unit before its own (they
// have entered it) and stops with a clear error when a rank is out of step
// or perturbs otherwise.
//
// Every call that applies an update or perturbs is therefore collective over
// the node's ranks: they must make the same sequence of acquire / stream_rows
// calls (the engine's sweeps, flush and replay on every rank). Calls that only
// read (no update, no perturbation) may come from one rank alone (rank 0's
// evaluation).
#pragma once
#include <array>
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
  // Bytes of the shared region: every weight once, in the storage dtype, the
  // posted works and claim lines (64-byte lines), then the working-copy slots
  // (2 of fp32 W+ and W- of the largest block, 4 of W+, W- and θ of the
  // largest streamed chunk).
  std::size_t shared_bytes() const { return share_->size(); }
  // Whether the node's ranks now claim the units' elements (they have shown
  // that they perturb alike) rather than meet at barriers; every rank of the
  // node switches at the same unit.
  bool claims_units() const { return mode_ == Mode::Claimed; }
  // What shared_bytes() will be for `arch` in `storage` over a world of
  // `world` ranks, before any store is built (the default choice of
  // store_factory.h asks whether the node has room for it).
  static std::size_t region_bytes(const Architecture& arch, DType storage, int world);

 private:
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;

  unsigned char* stored(int id) const { return base_ + offset_[static_cast<std::size_t>(id)]; }
  // This rank's share [lo, hi) of a unit of n elements.
  std::pair<int64_t, int64_t> my_share(int64_t n) const;
  // A unit: pieces (tensor id, first element, count), concatenated.
  struct Piece {
    int id;
    int64_t first, n;
  };
  // The copies a collective pass writes into the shared slots, by unit element
  // (null: not wanted / not shared).
  struct UnitCopies {
    float *plus = nullptr, *minus = nullptr, *theta = nullptr;
  };
  // The node's collective pass over a unit (work has an update or a
  // perturbation): barrier; this rank's share gets work.update and, when every
  // rank of the node asks for the same perturbation and `copies.plus` is set,
  // its share of the copies some rank of the node wants (`made`, bits as
  // BlockWork::wanted); barrier. Returns whether the copies were made.
  // With claims, the unit waits until every rank has entered unit
  // `free_after` (-1: nobody) before it writes shared slots.
  bool node_pass(const BlockWork& work, const std::vector<Piece>& pieces, const UnitCopies& copies,
                 int64_t free_after, unsigned& made);
  // work over elements [lo, hi) of the unit; the copies into the slots when `shared`.
  void apply_range(const BlockWork& w, const std::vector<Piece>& pieces, int64_t lo, int64_t hi,
                   const UnitCopies& copies, bool shared);
  // Every rank of the node posted the same unit as this one for `unit`
  // (and, `claimed`, perturbed alike); a clear error otherwise.
  void check_posts(int64_t unit, bool claimed) const;
  // The shared working-copy slots of the next block or chunk unit: `copies`
  // of one of the block slots or chunk slots (the units take turns).
  UnitCopies block_slots(const BlockWork& work) const;
  UnitCopies chunk_slots(const BlockWork& work, int64_t n) const;

  std::unique_ptr<NodeShare> share_;
  unsigned char* base_ = nullptr;
  std::vector<std::size_t> offset_;  // byte offset of each tensor in the region
  // The region after the weights: the table of posted works (kPostDepth
  // 64-byte entries per rank, by unit), the claim lines (per rank the units it
  // entered; the next claim and the claims done, of all units so far, each on
  // its own 64-byte line), two block slots (W+, W- of the largest block) and
  // four chunk slots (W+, W-, θ of the largest chunk of a streamed tensor).
  struct Posted;
  // Where each part of the region starts; `total` is its size.
  struct Region {
    std::vector<std::size_t> offset;
    std::size_t posted_at = 0, sync_at = 0, block_at = 0, chunk_at = 0, total = 0;
    std::size_t block_slot = 0, chunk_slot = 0;  // bytes of one slot
    int64_t block_cap = 0, chunk_cap = 0;
  };
  static Region region(const Architecture& arch, DType storage, int world);
  Posted& post(int node_rank, int64_t unit) const;
  int64_t& entered(int node_rank) const { return sync_[8 * node_rank]; }
  int64_t& claimed() const { return sync_[8 * share_->node_size()]; }
  int64_t& finished() const { return sync_[8 * share_->node_size() + 8]; }
  Posted* posted_ = nullptr;
  int64_t* sync_ = nullptr;
  // Slots of each kind: a block's copies are read until the next block's
  // pass, a chunk's only until the next pass of any kind, so more chunk slots
  // let a rank run further ahead through the many small units of the streamed
  // tensors.
  static constexpr int kBlockSlots = 2;
  static constexpr int kChunkSlots = 4;
  std::array<float*, kBlockSlots> block_slot_{};
  std::array<float*, kChunkSlots> chunk_slot_{};
  // The unit index of the last block / chunk unit that used each slot (-1: none yet).
  std::array<int64_t, kBlockSlots> block_unit_at_{};
  std::array<int64_t, kChunkSlots> chunk_unit_at_{};
  int64_t block_cap_ = 0, chunk_cap_ = 0;
  // How a pass is shared among the node's ranks: Learning (barriers, until
  // the first perturbing unit every rank offers to share), then Claimed (the
  // ranks perturb alike: no barrier, elements claimed) or Barriers (they do
  // not: node barriers, private copies).
  enum class Mode { Learning, Claimed, Barriers };
  Mode mode_ = Mode::Learning;
  unsigned node_wanted_ = 0;    // Claimed: the copies some rank of the node wants
  int64_t claimed_from_ = 0;    // Claimed: the first claimed unit
  int64_t units_ = 0;           // node passes entered
  int64_t block_units_ = 0, chunk_units_ = 0;  // of each kind (which slot is next)
  int64_t claim_base_ = 0;      // the first claim of the current unit
  std::vector<Piece> pieces_;
  AlignedBuffer<float> slot_plus_, slot_minus_;  // private W+ / W- (16-bit: slot_plus_ only, lean)
  BlockWork work_;                               // of the resident block, without its update
  bool shared_copies_ = false;                   // the resident block's copies are in the block slot
  int made_ = 0;  // private copies: which copy slot_plus_ holds (16-bit), which direction's pair (fp32)
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;
};

}  // namespace zotune
