// Parameter tiers behind one interface. A store keeps θ (storage × codec:
// RAM arrays or block files, fp32 or 16-bit) and stages it block by block:
// acquire(b, work) runs the fused ZO pass of zo/apply.h over block b's stored
// values (the deferred update, written back; this step's perturbation) and
// returns a BlockSession that hands out working copy k of the block and
// releases it when it ends. The update rule itself lives in zo/; stores move
// bytes and pick which copies to keep. Models see only fp32 pointers. A new
// storage (e.g. node-shared memory holding one θ for the ranks of a node) is
// another subclass; a new element format is a Codec (store/codec.h) and a case
// of zo_apply.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <optional>
#include <vector>

#include "model/architecture.h"
#include "store/codec.h"
#include "zo/apply.h"

namespace zotune {

class Checkpoint;
class ParamStore;

// A resident block. Working copy k of its non-streamed tensors (fp32, indexed
// by tensor id): k = 0 is θ + εz, k = 1 is θ − εz (θ itself when the work does
// not perturb, and for k = 1 when one-sided); only the copies the work wants
// (BlockWork::wanted) exist. A tier that holds two copies
// hands both out at once; a lean tier holds one and makes copy 1 from the
// stored values when it is asked for, after which copy 0's pointers are gone.
// Ending the session (destructor or release()) writes the block back.
class BlockSession {
 public:
  BlockSession() = default;
  BlockSession(ParamStore& store, int block) : store_(&store), block_(block) {}
  BlockSession(BlockSession&& o) noexcept : store_(std::exchange(o.store_, nullptr)), block_(o.block_) {}
  BlockSession& operator=(BlockSession&& o) noexcept;
  BlockSession(const BlockSession&) = delete;
  BlockSession& operator=(const BlockSession&) = delete;
  // A failed write-back stays with the store, which throws it from its next call.
  ~BlockSession();

  int block() const { return block_; }
  ParamPtrs copy(int k);
  // Ends the session now (idempotent): the block is written back, its pointers invalid.
  void release();

 private:
  void end_quietly() noexcept;
  ParamStore* store_ = nullptr;
  int block_ = -1;
};

// Work done on parameter memory, for the bench report.
struct StoreCounters {
  uint64_t param_bytes_read = 0;
  uint64_t param_bytes_written = 0;
  uint64_t rng_draws = 0;  // z values generated
  uint64_t rounding_draws = 0;  // stochastic-rounding uniforms (low-bit storage write-back)
  // Streaming tiers (disk): seconds the I/O spent reading / writing parameter
  // files, and seconds acquire() waited for a block that was not staged yet.
  double io_read_seconds = 0, io_write_seconds = 0, io_wait_seconds = 0;
  void reset() { *this = {}; }
};

// A chunk of rows of a streamed tensor (see ParamStore::stream_rows).
struct RowChunk {
  int64_t row0 = 0, rows = 0, cols = 0;
  const float* theta = nullptr;  // stored value after this call's update, fp32 [rows, cols]
  const float* plus = nullptr;   // W+ of the rows (theta when not perturbed; null when not wanted)
  const float* minus = nullptr;  // W- of the rows (theta when not perturbed or one-sided; null when not wanted)
};
using RowChunkFn = std::function<void(const RowChunk&)>;
// The chunk a tier hands out: its perturbed copies `plus` / `minus` where it
// made them (BlockWork::makes), else θ, or null when the work does not want them.
RowChunk row_chunk(const BlockWork& work, int64_t row0, int64_t rows, int64_t cols, const float* theta,
                   const float* plus, const float* minus);

// Rows per chunk when streaming a [V, width] tensor whose logits are taken for
// `nrows` rows (0: no logits): about 2 MB of fp32 weights and at most 16 MB of
// logits per chunk. A function of the shapes only, so every tier cuts the same
// chunks (and the memory plan can size them).
int64_t stream_chunk_rows(int64_t width, int64_t nrows, int64_t V);

class ParamStore {
 public:
  virtual ~ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // Makes block b resident with `work` applied (zo_apply over its stored
  // values) until the session ends. Streamed tensors are left alone.
  BlockSession acquire(int block, const BlockWork& work) {
    wanted_ = work.perturb ? work.wanted : BlockWork::kAllCopies;
    begin_block(block, work);
    return BlockSession(*this, block);
  }

  // Streamed tensors: the token embedding and the lm_head weight ([V, width],
  // the largest tensors of a model). No store ever holds working copies of them
  // whole; the engine walks them with stream_rows().
  bool streamed(int id) const { return streamed_[static_cast<std::size_t>(id)] != 0; }
  // The streamed tensors, ascending id.
  const std::vector<int>& streamed_ids() const { return streamed_ids_; }
  // Walks streamed tensor `id` in chunks of `chunk_rows` rows, first to last
  // (the last chunk may be shorter; every tier cuts the same chunks): applies
  // work.update to storage and, when work.perturb, writes W+/W- of the chunk
  // (one z draw per element); `fn` sees each chunk, pointers valid during the call.
  virtual void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) = 0;
  // Hint: block b is next (tiers that stream start reading it now).
  virtual void prefetch(int /*block*/) {}
  // Waits for background write-back (tiers that have one); afterwards the
  // storage and the counters are complete.
  virtual void sync() {}
  // The weights as a save_checkpoint reader (model/model.h), read a piece at a time.
  std::function<void(int, int64_t, int64_t, float*)> reader() const {
    return [this](int id, int64_t first, int64_t count, float* out) { read_range(id, first, count, out); };
  }
  // Stored value of elements [first, first + count) of tensor `id` as fp32
  // (all updates must have been flushed).
  virtual void read_range(int id, int64_t first, int64_t count, float* out) const = 0;
  // Tensor `id`'s stored values in place, when the tier keeps them as one fp32
  // array in RAM (readers such as a dev-set evaluation then need no copy);
  // nullptr otherwise. Valid until the next acquire().
  virtual const float* fp32_in_place(int /*id*/) const { return nullptr; }
  void read_tensor(int id, float* out) const {
    read_range(id, 0, arch_.tensors()[static_cast<std::size_t>(id)].numel(), out);
  }
  DType storage_dtype() const { return codec_.dtype(); }
  const Codec& codec() const { return codec_; }

  const Architecture& arch() const { return arch_; }
  StoreCounters& counters() { return counters_; }
  int64_t total_params() const { return total_params_; }
  // Elements of the non-streamed tensors of each block.
  int64_t block_numel(int block) const { return block_numel_[static_cast<std::size_t>(block)]; }
  // Ids of the tensors of each block that acquire() makes resident (all but streamed ones).
  const std::vector<int>& block_tensors(int block) const { return block_tensors_[static_cast<std::size_t>(block)]; }

 protected:
  friend class BlockSession;
  ParamStore(const Architecture& arch, DType storage, const char* who);
  // The tier's part of acquire(): stage block b and run zo_apply over it.
  virtual void begin_block(int block, const BlockWork& work) = 0;
  // Working copy k of a block begun and not yet ended (see BlockSession).
  virtual ParamPtrs working_copy(int block, int k) = 0;
  // Ends a block: write back, drop its working-copy pointers.
  virtual void end_block(int block) = 0;

  // The slice of all of tensor `id` stored at `stored` (offset to `begin` if given).
  ThetaSlice slice(int id, void* stored, int64_t begin = 0, int64_t n = -1) const;
  // Counters of a fused pass: its random draws; the stored bytes of n elements
  // read (and written back when updating) — tiers whose I/O counts bytes skip this.
  void count_draws(const PassDraws& d) {
    counters_.rng_draws += d.z;
    counters_.rounding_draws += d.rounding;
  }
  void count_bytes(int64_t n, const BlockWork& work);
  // [rows, cols] of streamed tensor `id` and the elements of its largest chunk
  // (checks chunk_rows).
  struct StreamShape {
    int64_t rows, cols, chunk_elems;
  };
  StreamShape stream_shape(int id, int64_t chunk_rows) const;
  // Copy k of a lean tier's block: the pointers of its one copy `ptrs`
  // (indexed by tensor id), after making copy k there from the stored values
  // (`stored(id)`) when `made` is the other copy; counts the stored bytes
  // read when `count_read`.
  ParamPtrs lean_copy(int block, int k, int& made, const BlockWork& work, std::vector<const float*>& ptrs,
                      const std::function<void*(int)>& stored, bool count_read);

  const Architecture& arch_;
  Codec codec_;
  std::vector<const float*> plus_, minus_;  // copies 0 and 1 of the resident block(s), by tensor id
  std::vector<std::vector<int>> block_tensors_;  // non-streamed tensors of each block
  std::vector<int64_t> block_numel_;
  std::vector<uint8_t> streamed_;
  std::vector<int> streamed_ids_;
  StoreCounters counters_;
  int64_t total_params_ = 0;
  unsigned wanted_ = BlockWork::kAllCopies;  // of the resident block (BlockWork::wanted)
};

// All weights as fp32 in RAM. Perturbed copies of the resident block live in one
// working slot; streamed tensors are perturbed a chunk at a time.
class RamStore final : public ParamStore {
 public:
  RamStore(const Architecture& arch, const Checkpoint& ckpt);
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  const float* fp32_in_place(int id) const override { return weights_[static_cast<std::size_t>(id)].data(); }

 private:
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;

  std::vector<AlignedBuffer<float>> weights_;
  AlignedBuffer<float> slot_plus_, slot_minus_;  // the resident block's W+ / W-
  AlignedBuffer<float> chunk_plus_, chunk_minus_;
};

}  // namespace zotune
