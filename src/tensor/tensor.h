// Non-owning tensor views and an owning fp32 tensor. No math here.
#pragma once
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "tensor/dtype.h"

namespace zotune {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
}
std::string shape_str(const Shape& s);

// A view of bytes someone else owns (an mmap, an AlignedBuffer, ...).
struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;

  int64_t numel() const { return zotune::numel(shape); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
  const float* f32() const { return static_cast<const float*>(data); }
};

// Owning fp32 tensor (working tier).
struct Tensor {
  Shape shape;
  AlignedBuffer<float> buf;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), buf(static_cast<std::size_t>(zotune::numel(shape))) {}
  int64_t numel() const { return zotune::numel(shape); }
  float* data() { return buf.data(); }
  const float* data() const { return buf.data(); }
  TensorView view() const { return {DType::F32, shape, buf.data()}; }
};

}  // namespace zotune
