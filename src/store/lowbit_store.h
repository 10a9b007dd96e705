// The low-bit RAM tier (--offload ram --storage-dtype bf16|fp16): the RAM
// storage (param_store.h) with a 16-bit codec, half the memory of fp32. Only
// the resident block has an fp32 copy, even when it is not perturbed (eval),
// since the model reads fp32. The tier is lean (BlockSession): one copy holds
// W+ for the plus pass; asking for copy 1 rewrites it as W- = stored - eps z,
// drawn again from the stored 16-bit values — exactly what W+ was made from,
// so this equals writing both copies at once, for one more z draw and one more
// 16-bit read per parameter instead of a second fp32 copy. Updates are applied
// in fp32 and written back with stochastic rounding (kernels/zo_lowbit.h): an
// update far below one ulp still moves the stored weight in expectation,
// where round-to-nearest would drop it. This class only names that pairing.
#pragma once
#include <cstdint>

#include "store/param_store.h"

namespace zotune {

class LowBitRamStore final : public RamStore {
 public:
  // `storage` is BF16 or F16 (anything else is an error).
  LowBitRamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage);
  // The stored 16-bit values of tensor `id`.
  const uint16_t* stored(int id) const { return reinterpret_cast<const uint16_t*>(stored_bytes(id)); }
};

}  // namespace zotune
