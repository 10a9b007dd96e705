#include "store/storage_convert.h"

#include <cstring>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/weights.h"

namespace zotune {

void convert_to_storage(const TensorView& v, int64_t begin, int64_t n, DType to, void* out,
                        AlignedBuffer<float>& tmp) {
  const auto* src = static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(begin) * dtype_size(v.dtype);
  if (v.dtype == to) {
    std::memcpy(out, src, static_cast<std::size_t>(n) * dtype_size(to));
    return;
  }
  if (to == DType::F32) {
    upcast_to_f32(TensorView{v.dtype, {n}, src}, static_cast<float*>(out));
    return;
  }
  check(to == DType::BF16 || to == DType::F16, "cannot store weights as ", dtype_name(to));
  const float* f32 = nullptr;
  if (v.dtype == DType::F32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    f32 = reinterpret_cast<const float*>(src);
  } else {  // a misaligned F32 source, or the other 16-bit format: exact fp32 first
    tmp.reset(static_cast<std::size_t>(n));
    upcast_to_f32(TensorView{v.dtype, {n}, src}, tmp.data());
    f32 = tmp.data();
  }
  if (to == DType::BF16) kernels::f32_to_bf16(f32, static_cast<uint16_t*>(out), n);
  else kernels::f32_to_f16(f32, static_cast<uint16_t*>(out), n);
}

}  // namespace zotune
