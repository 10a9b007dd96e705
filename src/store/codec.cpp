#include "store/codec.h"

#include <cstring>

#include "base/error.h"
#include "kernels/kernels.h"
#include "store/storage_convert.h"

namespace zotune {

Codec::Codec(DType dtype, const char* who) : dtype_(dtype) {
  check(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16, who, ": storage dtype ", dtype_name(dtype),
        " is not F32, BF16 or F16");
}

void Codec::decode(const void* in, int64_t n, float* out) const {
  if (dtype_ == DType::F32) std::memcpy(out, in, static_cast<std::size_t>(n) * sizeof(float));
  else if (dtype_ == DType::BF16) kernels::bf16_to_f32(static_cast<const uint16_t*>(in), out, n);
  else kernels::f16_to_f32(static_cast<const uint16_t*>(in), out, n);
}

void Codec::encode(const TensorView& v, int64_t begin, int64_t n, void* out, AlignedBuffer<float>& tmp) const {
  convert_to_storage(v, begin, n, dtype_, out, tmp);
}

}  // namespace zotune
