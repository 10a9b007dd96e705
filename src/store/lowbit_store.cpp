#include "store/lowbit_store.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "store/storage_convert.h"

namespace zotune {

namespace {

// Elements converted between two page drops: bounds what a tensor as large as
// a 150k-token embedding leaves resident from the mapping while loading.
constexpr int64_t kLoadChunk = int64_t{1} << 20;


}  // namespace

LowBitRamStore::LowBitRamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage)
    : ParamStore(arch, storage, "low-bit RAM store") {
  check(codec_.lowbit(), "low-bit RAM store: storage dtype ", dtype_name(storage), " is not BF16 or F16");
  const auto& table = arch.tensors();
  weights_.resize(table.size());
  AlignedBuffer<float> tmp;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const TensorView v = checked_view(arch, ckpt, table[i]);
    const int64_t n = v.numel();
    weights_[i].reset(static_cast<std::size_t>(n));
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      codec_.encode(v, b, m, weights_[i].data() + b, tmp);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
    }
  }
}

void LowBitRamStore::begin_block(int block, const BlockWork& work) {
  float* slot = blocks::ensure(slot_, block_numel(block));
  work_ = work;
  made_ = work.wants(0) ? 0 : 1;  // lean: the one copy is the first wanted
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    float* w = slot + offset;
    const ThetaSlice s = slice(id, weights_[static_cast<std::size_t>(id)].data());
    count_draws(zo_apply(work, s, made_ == 0 ? w : nullptr, made_ == 1 ? w : nullptr, nullptr));
    count_bytes(s.n, work);
    plus_[static_cast<std::size_t>(id)] = w;
    offset += s.n;
  }
}

ParamPtrs LowBitRamStore::working_copy(int block, int k) {
  return lean_copy(block, k, made_, work_, plus_, [&](int id) { return weights_[static_cast<std::size_t>(id)].data(); },
                   true);
}

void LowBitRamStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  float* ct = blocks::ensure(chunk_theta_, cap);
  float* cp = work.makes(0) ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.makes(1) ? blocks::ensure(chunk_minus_, cap) : nullptr;
  uint16_t* stored = weights_[static_cast<std::size_t>(id)].data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols, b = r0 * cols;
    count_draws(zo_apply(work, slice(id, stored + b, b, n), cp, cm, ct));
    count_bytes(n, work);
    if (fn) fn(row_chunk(work, r0, nr, cols, ct, cp, cm));
  }
}

void LowBitRamStore::end_block(int block) {
  // The slot is reused by the next block: stale pointers must not be read.
  for (int id : block_tensors_[static_cast<std::size_t>(block)])
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
}

void LowBitRamStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  codec_.decode(weights_[static_cast<std::size_t>(id)].data() + first, count, out);
}

}  // namespace zotune
