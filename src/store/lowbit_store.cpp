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

// Source elements [b, b + n) of `v` into `out` (already offset) in dtype `to`.
void convert_chunk(const TensorView& v, int64_t b, int64_t n, DType to, uint16_t* out, AlignedBuffer<float>& tmp) {
  const auto* src = static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype);
  if (v.dtype == to) {
    std::memcpy(out, src, static_cast<std::size_t>(n) * sizeof(uint16_t));
    return;
  }
  const float* f32 = nullptr;
  if (v.dtype == DType::F32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    f32 = reinterpret_cast<const float*>(src);
  } else {  // a misaligned F32 source, or the other 16-bit format: exact fp32 first
    tmp.reset(static_cast<std::size_t>(n));
    upcast_to_f32(TensorView{v.dtype, {n}, src}, tmp.data());
    f32 = tmp.data();
  }
  if (to == DType::BF16) kernels::f32_to_bf16(f32, out, n);
  else kernels::f32_to_f16(f32, out, n);
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
      convert_chunk(v, b, m, dtype_, weights_[i].data() + b, tmp);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
    }
  }
  block_numel_.assign(block_tensors_.size(), 0);
  for (std::size_t b = 0; b < block_tensors_.size(); ++b)
    for (int id : block_tensors_[b]) block_numel_[b] += table[static_cast<std::size_t>(id)].numel();
  pin_block0_ = arch.head_weight_id() >= 0 && table[static_cast<std::size_t>(arch.head_weight_id())].block == 0;
}

LowBitRamStore::Slot& LowBitRamStore::slot_for(int block, bool perturbed) {
  Slot& s = (block == 0 && pin_block0_) ? pinned_ : ring_;
  const int64_t n = block_numel_[static_cast<std::size_t>(block)];
  blocks::ensure(s.plus, n);
  if (perturbed) blocks::ensure(s.minus, n);  // eval needs one fp32 copy, not two
  return s;
}

void LowBitRamStore::acquire(int block, const BlockWork& work) {
  const auto& table = arch_.tensors();
  Slot& slot = slot_for(block, work.perturb);
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const auto& spec = table[static_cast<std::size_t>(id)];
    const int64_t n = spec.numel();
    kernels::ZoUpdate upd;
    if (work.update) {
      upd = {true, work.update->seed, work.update->lr, work.update->grad, spec.decays() ? work.weight_decay : 0.0f};
    }
    kernels::ZoPerturb pert;
    float* plus = slot.plus.data() + offset;
    float* minus = plus;
    float* out_w = plus;  // unperturbed: one fp32 copy serves as both
    if (work.perturb) {
      pert = {true, work.seed, work.eps};
      minus = slot.minus.data() + offset;
      out_w = work.one_sided ? minus : nullptr;  // one-sided: the minus pass runs on θ itself
    }
    kernels::zo_lowbit_update_perturb(static_cast<uint32_t>(id), fmt_, work.dist, upd, pert, 0, n,
                                      weights_[static_cast<std::size_t>(id)].data(), pert.active ? plus : nullptr,
                                      pert.active && !work.one_sided ? minus : nullptr, out_w);
    const auto un = static_cast<uint64_t>(n);
    counters_.param_bytes_read += un * sizeof(uint16_t);
    if (upd.active) {
      counters_.param_bytes_written += un * sizeof(uint16_t);
      counters_.rounding_draws += un;
    }
    if (work.dist != kernels::ZDist::Ones) counters_.rng_draws += un * ((upd.active ? 1 : 0) + (pert.active ? 1 : 0));
    plus_[static_cast<std::size_t>(id)] = plus;
    minus_[static_cast<std::size_t>(id)] = minus;
    offset += n;
  }
}

void LowBitRamStore::release(int block) {
  // The slot is reused by the next block: stale pointers must not be read.
  for (int id : block_tensors_[static_cast<std::size_t>(block)])
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
}

void LowBitRamStore::read_tensor(int id, float* out) const {
  const auto& w = weights_[static_cast<std::size_t>(id)];
  const auto n = static_cast<int64_t>(w.size());
  if (fmt_ == kernels::LowBitFormat::BF16) kernels::bf16_to_f32(w.data(), out, n);
  else kernels::f16_to_f32(w.data(), out, n);
}

}  // namespace zotune
