// The low-bit RAM tier (--offload ram --storage-dtype bf16|fp16): every weight
// in RAM as 16-bit floats, half the memory of RamStore. Only the resident
// block has an fp32 copy, even when it is not perturbed (eval), since the model
// reads fp32. The tier is lean (BlockSession): one copy holds W+ for the plus
// pass; asking for copy 1 rewrites it as W- = stored - eps z, drawn again from
// the stored 16-bit values — exactly what W+ was made from, so this equals
// writing both copies at once, for one more z draw and one more 16-bit read per
// parameter instead of a second fp32 copy. Updates are applied in fp32 and
// written back with stochastic rounding (kernels/zo_lowbit.h): an update far
// below one ulp still moves the stored weight in expectation, where
// round-to-nearest would drop it.
#pragma once
#include <cstdint>
#include <vector>

#include "store/param_store.h"

namespace zotune {

class LowBitRamStore final : public ParamStore {
 public:
  // `storage` is BF16 or F16. Source tensors in that dtype are copied bit-exactly,
  // others are rounded to nearest even (F32) or converted through fp32. The
  // checkpoint's pages are dropped from memory once converted (they are read
  // again from the file if anyone touches them), so loading never holds the
  // checkpoint and the store in RAM at once.
  LowBitRamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage);
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  // The stored 16-bit values of tensor `id`.
  const uint16_t* stored(int id) const { return weights_[static_cast<std::size_t>(id)].data(); }

 private:
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;

  std::vector<AlignedBuffer<uint16_t>> weights_;
  AlignedBuffer<float> slot_;  // the resident block's fp32 copy
  BlockWork work_;             // of the resident block
  int made_ = 0;               // which working copy slot_ holds
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;
};

}  // namespace zotune
