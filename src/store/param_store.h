// Parameter tiers behind one interface. The trainer walks blocks in order and,
// for each, asks the store to make it resident with this step's work applied:
// the deferred update of the previous step (written back to storage) and the
// two perturbed working copies of this step. Models see only fp32 pointers.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "kernels/zo_kernels.h"
#include "kernels/zo_lowbit.h"
#include "model/architecture.h"

namespace zotune {

class Checkpoint;

struct PendingUpdate {
  uint64_t seed = 0;
  float lr = 0;
  float grad = 0;
};

// What acquire() does to a block's parameters.
struct BlockWork {
  kernels::ZDist dist = kernels::ZDist::Gaussian;
  std::optional<PendingUpdate> update;  // apply θ -= lr (g z' + wd θ) and store it
  bool perturb = false;                 // write θ ± εz working copies
  bool one_sided = false;               // minus copy = θ itself (L0 pass)
  uint64_t seed = 0;
  float eps = 0;
  float weight_decay = 0;               // for tensors whose role decays
};

// The perturbation kernel argument of `work` (inactive when it does not perturb).
inline kernels::ZoPerturb perturb_of(const BlockWork& work) {
  return work.perturb ? kernels::ZoPerturb{true, work.seed, work.eps} : kernels::ZoPerturb{};
}

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
  const float* plus = nullptr;   // W+ of the rows (theta when not perturbed)
  const float* minus = nullptr;  // W- of the rows (theta when not perturbed or one-sided)
};
using RowChunkFn = std::function<void(const RowChunk&)>;

// Rows per chunk when streaming a [V, width] tensor whose logits are taken for
// `nrows` rows (0: no logits): about 2 MB of fp32 weights and at most 16 MB of
// logits per chunk. A function of the shapes only, so every tier cuts the same
// chunks (and the memory plan can size them).
int64_t stream_chunk_rows(int64_t width, int64_t nrows, int64_t V);

class ParamStore {
 public:
  explicit ParamStore(const Architecture& arch);
  virtual ~ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // Makes block b resident with `work` applied. Afterwards plus()[id] and minus()[id]
  // are valid fp32 pointers for every tensor of block b (the same pointer when the
  // block is not perturbed) until release(b) — except streamed tensors, which
  // acquire() leaves alone.
  virtual void acquire(int block, const BlockWork& work) = 0;

  // Streamed tensors: the token embedding and the lm_head weight ([V, width],
  // the largest tensors of a model). No store ever holds working copies of them
  // whole; the engine walks them with stream_rows().
  bool streamed(int id) const { return streamed_[static_cast<std::size_t>(id)] != 0; }
  // Walks streamed tensor `id` in chunks of `chunk_rows` rows, first to last
  // (the last chunk may be shorter; every tier cuts the same chunks): applies
  // work.update to storage and, when work.perturb, writes W+/W- of the chunk
  // (one z draw per element); `fn` sees each chunk, pointers valid during the call.
  virtual void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) = 0;
  virtual void release(int block) = 0;
  // Tiers that hand out W+ and W- at once (two fp32 copies of the resident
  // block) ignore this. A lean tier keeps one copy: after a perturbed acquire()
  // only plus() is valid for block b; switch_to_minus(b) rewrites that copy as
  // W- (drawing z again from the stored values) and only minus() is valid after.
  virtual void switch_to_minus(int /*block*/) {}
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
  void read_tensor(int id, float* out) const {
    read_range(id, 0, arch_.tensors()[static_cast<std::size_t>(id)].numel(), out);
  }
  virtual DType storage_dtype() const = 0;

  ParamPtrs plus() const { return plus_; }
  ParamPtrs minus() const { return minus_; }
  const Architecture& arch() const { return arch_; }
  StoreCounters& counters() { return counters_; }
  int64_t total_params() const { return total_params_; }
  // Ids of the tensors of each block that acquire() makes resident (all but streamed ones).
  // Elements of the non-streamed tensors of each block.
  int64_t block_numel(int block) const { return block_numel_[static_cast<std::size_t>(block)]; }
  const std::vector<int>& block_tensors(int block) const { return block_tensors_[static_cast<std::size_t>(block)]; }

 protected:
  // The fused pass over fp32 tensor `id` held at `w`: applies the block's deferred
  // update in place and, when `work.perturb`, writes W+ to `plus` and W- to
  // `minus` (null in one-sided mode); then points plus_/minus_ at the results.
  // Shared by the fp32 tiers so they cannot drift apart.
  void apply_fp32_work(int id, const BlockWork& work, float* w, float* plus, float* minus);
  // The kernel arguments of `work` for tensor `id` (weight decay by role).
  kernels::ZoUpdate update_of(int id, const BlockWork& work) const;
  // [rows, cols] of streamed tensor `id` and the elements of its largest chunk
  // (checks chunk_rows).
  struct StreamShape {
    int64_t rows, cols, chunk_elems;
  };
  StreamShape stream_shape(int id, int64_t chunk_rows) const;
  // Counters of one fused pass over n elements: z draws, stored bytes read
  // (and written back when updating), or both.
  void count_rng(int64_t n, const BlockWork& work);
  void count_bytes(int64_t n, const BlockWork& work, std::size_t stored_bytes);
  void count_pass(int64_t n, const BlockWork& work, std::size_t stored_bytes) {
    count_rng(n, work);
    count_bytes(n, work, stored_bytes);
  }
  // The lean 16-bit tiers' two passes over tensor `id` stored as `stored` into
  // its one fp32 copy `w` (counting z and rounding draws; bytes are the
  // caller's). First: the update, rounded back stochastically, then W+ — or θ
  // when not perturbed. Minus (after the plus pass): W- = θ - eps z from the
  // stored value, or θ itself when one-sided.
  void lowbit_first(int id, kernels::LowBitFormat fmt, const BlockWork& work, uint16_t* stored, float* w);
  void lowbit_minus(int id, kernels::LowBitFormat fmt, const BlockWork& work, uint16_t* stored, float* w);

  const Architecture& arch_;
  std::vector<const float*> plus_, minus_;
  std::vector<std::vector<int>> block_tensors_;  // non-streamed tensors of each block
  std::vector<int64_t> block_numel_;
  std::vector<uint8_t> streamed_;
  StoreCounters counters_;
  int64_t total_params_ = 0;
};

// All weights as fp32 in RAM. Perturbed copies of the resident block live in one
// working slot; streamed tensors are perturbed a chunk at a time.
class RamStore final : public ParamStore {
 public:
  RamStore(const Architecture& arch, const Checkpoint& ckpt);
  void acquire(int block, const BlockWork& work) override;
  void release(int block) override;
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  DType storage_dtype() const override { return DType::F32; }

 private:
  std::vector<AlignedBuffer<float>> weights_;
  AlignedBuffer<float> slot_plus_, slot_minus_;  // the resident block's W+ / W-
  AlignedBuffer<float> chunk_plus_, chunk_minus_;
};

}  // namespace zotune
