// The codec of a tier: how θ's elements are stored — fp32, or bf16 / fp16
// written back with stochastic rounding (kernels/zo_lowbit.h). Independent of
// where the bytes live (RAM arrays, block files): a store pairs one storage
// with one codec, and the fused ZO pass (zo/apply.h) takes the codec to pick
// its kernel, so no store branches on the element format.
#pragma once
#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"
#include "kernels/zo_lowbit.h"
#include "tensor/tensor.h"

namespace zotune {

class Codec {
 public:
  // `dtype` is F32, BF16 or F16; anything else is an error naming `who` (the tier).
  Codec(DType dtype, const char* who);

  DType dtype() const { return dtype_; }
  std::size_t bytes() const { return dtype_size(dtype_); }  // per stored element
  bool lowbit() const { return dtype_ != DType::F32; }
  kernels::LowBitFormat format() const {  // lowbit() only
    return dtype_ == DType::F16 ? kernels::LowBitFormat::F16 : kernels::LowBitFormat::BF16;
  }
  // n stored elements to fp32.
  void decode(const void* in, int64_t n, float* out) const;
  // Checkpoint elements [begin, begin + n) of `v` into stored form at `out`
  // (storage_convert.h: a bit copy for the same dtype, else round to nearest even).
  void encode(const TensorView& v, int64_t begin, int64_t n, void* out, AlignedBuffer<float>& tmp) const;

 private:
  DType dtype_;
};

}  // namespace zotune
