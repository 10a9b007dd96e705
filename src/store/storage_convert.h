// Converting checkpoint tensors to the dtype a tier stores. One definition, so
// that every tier holding the same storage dtype starts from the same bits
// (the disk tier's bf16 files equal the low-bit RAM tier's arrays).
#pragma once
#include <cstdint>

#include "base/aligned_buffer.h"
#include "tensor/tensor.h"

namespace zotune {

// Source elements [begin, begin + n) of `v` (F32, BF16 or F16) into `out`
// (already offset to `begin`) in dtype `to` (F32, BF16 or F16): a bit copy when
// the dtypes match, round-to-nearest-even from F32 to 16 bits, and through
// exact fp32 between the two 16-bit formats. `tmp` is scratch (grows to n).
void convert_to_storage(const TensorView& v, int64_t begin, int64_t n, DType to, void* out,
                        AlignedBuffer<float>& tmp);

}  // namespace zotune
