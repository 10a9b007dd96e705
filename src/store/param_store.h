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
// by tensor id), k = 0..2q-1 for the q directions of the work it was acquired
// with: copy 2d = θ + εz_d, copy 2d+1 = θ − εz_d (θ itself when the work does
// not perturb, and for odd k when one-sided). Only the copies the work wants
// exist (BlockWork::wanted: a rank of a perturbation pair reads the W+ or the
// W- copies). A tier holds one or two copies at a time and makes the others
// from the stored values when they are asked for (a two-copy tier a
// direction's pair, a lean tier one copy), after which the pointers of the
// copies it replaced are gone: ask for each copy when its pass runs, in
// ascending k (a lean tier refuses a copy it has replaced). Ending the session
// (destructor or release()) writes the block back.
class BlockSession {
 public:
  BlockSession() = default;
  // `wanted`: BlockWork::wanted of a perturbing work, else kAllCopies.
  BlockSession(ParamStore& store, int block, int copies, unsigned wanted)
      : store_(&store), block_(block), copies_(copies), wanted_(wanted) {}
  BlockSession(BlockSession&& o) noexcept
      : store_(std::exchange(o.store_, nullptr)), block_(o.block_), copies_(o.copies_), wanted_(o.wanted_) {}
  BlockSession& operator=(BlockSession&& o) noexcept;
  BlockSession(const BlockSession&) = delete;
  BlockSession& operator=(const BlockSession&) = delete;
  // A failed write-back stays with the store, which throws it from its next call.
  ~BlockSession();

  int block() const { return block_; }
  int copies() const { return copies_; }  // 2q
  ParamPtrs copy(int k);
  // Ends the session now (idempotent): the block is written back, its pointers invalid.
  void release();

 private:
  void end_quietly() noexcept;
  bool wants(int k) const { return (wanted_ >> (k % 2) & 1u) != 0; }
  ParamStore* store_ = nullptr;
  int block_ = -1;
  int copies_ = 2;
  unsigned wanted_ = BlockWork::kAllCopies;
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
    begin_block(block, work);
    return BlockSession(*this, block, 2 * work.directions(), work.perturb ? work.wanted : BlockWork::kAllCopies);
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
  // (`stored(id)`) when `made` is an earlier copy (a later one is an error);
  // counts the stored bytes read when `count_read`.
  ParamPtrs lean_copy(int block, int k, int& made, const BlockWork& work, std::vector<const float*>& ptrs,
                      const std::function<void*(int)>& stored, bool count_read);
  // Copy k of a two-copy tier's block, whose plus_ / minus_ hold direction
  // `made`'s pair (minus_ is θ when one-sided): the pair of direction k / 2 is
  // made there from the stored values (`stored(id)`) when it is another one.
  ParamPtrs pair_copy(int block, int k, int& made, const BlockWork& work, const std::function<void*(int)>& stored);

  const Architecture& arch_;
  Codec codec_;
  std::vector<const float*> plus_, minus_;  // copies 2d and 2d+1 of the resident block(s), by tensor id
  std::vector<std::vector<int>> block_tensors_;  // non-streamed tensors of each block
  std::vector<int64_t> block_numel_;
  std::vector<uint8_t> streamed_;
  std::vector<int> streamed_ids_;
  StoreCounters counters_;
  int64_t total_params_ = 0;
};

// The RAM storage: every weight in RAM in its codec's format, one array per
// tensor (fp32, or bf16 / fp16 with stochastic rounding: codec.h). Working
// copies of the resident block follow from the codec: fp32 values are what the
// model reads, so unperturbed passes read storage in place and a perturbed
// block gets two slots (a direction's W+ and W-); 16-bit values are not, so
// the block always has one fp32 slot (lean: copy 0, later copies made from the
// stored values when asked for), half the weights' memory for one more z draw.
// Streamed tensors are perturbed a chunk at a time (16-bit: the chunk's θ
// decoded too). The checkpoint's pages are dropped from memory as they are
// converted (read again from the file if anyone touches them), so loading
// never holds the checkpoint and the store in RAM at once.
class RamStore : public ParamStore {
 public:
  // `storage` is F32, BF16 or F16. Source tensors in that dtype are copied
  // bit-exactly, others are converted (to 16 bits: rounded to nearest even).
  RamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage = DType::F32);
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  const float* fp32_in_place(int id) const override {
    return lean_ ? nullptr : reinterpret_cast<const float*>(stored_bytes(id));
  }

 protected:
  const unsigned char* stored_bytes(int id) const { return weights_[static_cast<std::size_t>(id)].data(); }

 private:
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;
  void* stored(int id) { return weights_[static_cast<std::size_t>(id)].data(); }

  bool lean_;  // one fp32 slot (16-bit codec) instead of W+ / W- over fp32 storage
  std::vector<AlignedBuffer<unsigned char>> weights_;  // stored bytes, by tensor id
  AlignedBuffer<float> slot_plus_, slot_minus_;  // the resident block's copies (lean: slot_plus_ only)
  BlockWork work_;  // of the resident block, without its update
  int made_ = 0;    // lean: the copy slot_plus_ holds; else: the direction of the pair
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;
};

}  // namespace zotune
