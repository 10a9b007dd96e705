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


kernels::LowBitFormat format_of(DType t) {
  check(t == DType::BF16 || t == DType::F16, "low-bit RAM store: storage dtype ", dtype_name(t),
        " is not BF16 or F16");
  return t == DType::BF16 ? kernels::LowBitFormat::BF16 : kernels::LowBitFormat::F16;
}

}  // namespace

LowBitRamStore::LowBitRamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage)
    : ParamStore(arch), dtype_(storage), fmt_(format_of(storage)) {
  const auto& table = arch.tensors();
  weights_.resize(table.size());
  AlignedBuffer<float> tmp;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const TensorView v = checked_view(arch, ckpt, table[i]);
    const int64_t n = v.numel();
    weights_[i].reset(static_cast<std::size_t>(n));
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      convert_to_storage(v, b, m, dtype_, weights_[i].data() + b, tmp);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
    }
  }
}

void LowBitRamStore::acquire(int block, const BlockWork& work) {
  const auto& table = arch_.tensors();
  float* slot = blocks::ensure(slot_, block_numel(block));
  work_ = work;
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const int64_t n = table[static_cast<std::size_t>(id)].numel();
    float* w = slot + offset;
    lowbit_first(id, fmt_, work, weights_[static_cast<std::size_t>(id)].data(), w);
    count_bytes(n, work, sizeof(uint16_t));
    plus_[static_cast<std::size_t>(id)] = w;
    minus_[static_cast<std::size_t>(id)] = work.perturb ? nullptr : w;
    offset += n;
  }
}

void LowBitRamStore::switch_to_minus(int block) {
  if (!work_.perturb) return;
  const auto& table = arch_.tensors();
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const int64_t n = table[static_cast<std::size_t>(id)].numel();
    float* w = slot_.data() + offset;
    lowbit_minus(id, fmt_, work_, weights_[static_cast<std::size_t>(id)].data(), w);
    count_bytes(n, BlockWork{}, sizeof(uint16_t));
    plus_[static_cast<std::size_t>(id)] = nullptr;
    minus_[static_cast<std::size_t>(id)] = w;
    offset += n;
  }
  work_.perturb = false;
}

void LowBitRamStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  const kernels::ZoUpdate upd = update_of(id, work);
  const kernels::ZoPerturb pert = perturb_of(work);
  float* ct = blocks::ensure(chunk_theta_, cap);
  float* cp = pert.active ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = pert.active && !work.one_sided ? blocks::ensure(chunk_minus_, cap) : nullptr;
  uint16_t* stored = weights_[static_cast<std::size_t>(id)].data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols, b = r0 * cols;
    kernels::zo_lowbit_update_perturb(static_cast<uint32_t>(id), fmt_, work.dist, upd, pert, b, n, stored + b, cp,
                                      cm, ct);
    count_pass(n, work, sizeof(uint16_t));
    if (upd.active) counters_.rounding_draws += static_cast<uint64_t>(n);
    if (fn) fn(RowChunk{r0, nr, cols, ct, cp ? cp : ct, cm ? cm : ct});
  }
}

void LowBitRamStore::release(int block) {
  // The slot is reused by the next block: stale pointers must not be read.
  for (int id : block_tensors_[static_cast<std::size_t>(block)])
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
}

void LowBitRamStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  const uint16_t* w = weights_[static_cast<std::size_t>(id)].data() + first;
  if (fmt_ == kernels::LowBitFormat::BF16) kernels::bf16_to_f32(w, out, count);
  else kernels::f16_to_f32(w, out, count);
}

}  // namespace zotune
