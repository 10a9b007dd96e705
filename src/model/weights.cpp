#include "model/weights.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kernels/finite.h"
#include "kernels/kernels.h"

namespace zotune {

std::string resolve_tensor_name(const Architecture& arch, const Checkpoint& ckpt, const TensorSpec& spec) {
  if (ckpt.has(spec.name)) return spec.name;
  const std::string& prefix = arch.config().base_prefix;
  if (!prefix.empty() && spec.name.rfind(prefix, 0) == 0) {
    std::string bare = spec.name.substr(prefix.size());
    if (ckpt.has(bare)) return bare;
  }
  fail(ckpt.dir().string(), ": missing tensor '", spec.name, "' (required by ", arch.config().file, ")");
}

TensorView checked_view(const Architecture& arch, const Checkpoint& ckpt, const TensorSpec& spec) {
  const std::string name = resolve_tensor_name(arch, ckpt, spec);
  TensorView v = ckpt.get(name);
  const std::string file = ckpt.file_of(name).string();
  if (!is_float_storage(v.dtype))
    fail(file, ": tensor '", name, "' has dtype ", dtype_name(v.dtype), "; expected F32, F16 or BF16");
  if (v.shape != spec.shape)
    fail(file, ": tensor '", name, "' has shape ", shape_str(v.shape), ", expected ", shape_str(spec.shape),
         " from ", arch.config().file);
  check_finite(v, file, name);
  return v;
}

void check_finite(const TensorView& v, const std::string& file, const std::string& name) {
  if (!is_float_storage(v.dtype)) return;
  const std::size_t es = dtype_size(v.dtype);
  const int64_t n = v.numel(), piece = (int64_t{32} << 20) / static_cast<int64_t>(es);  // 32 MB at a time
  const auto* base = static_cast<const char*>(v.data);
  for (int64_t first = 0; first < n; first += piece) {
    const int64_t count = std::min(piece, n - first);
    const char* p = base + first * static_cast<int64_t>(es);
    const std::size_t bytes = static_cast<std::size_t>(count) * es;
    prefault_mapped_pages(p, bytes);
    int64_t at = -1;
    switch (v.dtype) {
      case DType::F32: at = kernels::first_nonfinite_f32(reinterpret_cast<const float*>(p), count); break;
      case DType::BF16: at = kernels::first_nonfinite_bf16(reinterpret_cast<const uint16_t*>(p), count); break;
      default: at = kernels::first_nonfinite_f16(reinterpret_cast<const uint16_t*>(p), count); break;
    }
    if (at >= 0) {
      float x = 0;
      upcast_to_f32(TensorView{v.dtype, {1}, p + at * static_cast<int64_t>(es)}, &x);
      fail(file, ": tensor '", name, "' holds a non-finite value (", x, " at flat index ", first + at,
           "); the checkpoint is damaged or diverged");
    }
    // The pages go again: the check leaves resident memory as it found it (the
    // disk tier and the memory plan count on that); a later reader faults them back.
    drop_mapped_pages(p, bytes);
  }
}

void upcast_to_f32(const TensorView& v, float* out) {
  const int64_t n = v.numel();
  switch (v.dtype) {
    case DType::F32: std::memcpy(out, v.data, sizeof(float) * static_cast<std::size_t>(n)); break;
    case DType::BF16: kernels::bf16_to_f32(static_cast<const uint16_t*>(v.data), out, n); break;
    case DType::F16: kernels::f16_to_f32(static_cast<const uint16_t*>(v.data), out, n); break;
    default: fail("cannot upcast dtype ", dtype_name(v.dtype), " to F32");
  }
}

ModelWeights::ModelWeights(const Architecture& arch, const Checkpoint& ckpt) {
  const auto& table = arch.tensors();
  owned_.resize(table.size());
  ptrs_.resize(table.size());
  dtypes_.resize(table.size());
  // Every tensor is checked (name, shape, dtype, finite) before anything is allocated.
  std::vector<TensorView> views;
  views.reserve(table.size());
  for (const auto& spec : table) views.push_back(checked_view(arch, ckpt, spec));
  for (std::size_t i = 0; i < table.size(); ++i) {
    const TensorView& v = views[i];
    dtypes_[i] = v.dtype;
    if (v.dtype == DType::F32 && reinterpret_cast<uintptr_t>(v.data) % alignof(float) == 0) {
      ptrs_[i] = v.f32();
    } else {
      owned_[i].reset(static_cast<std::size_t>(v.numel()));
      upcast_to_f32(v, owned_[i].data());
      ptrs_[i] = owned_[i].data();
    }
  }
}

}  // namespace zotune
