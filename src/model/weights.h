// Binding the tensor table to a checkpoint: name resolution, shape and dtype
// validation, and fp32 working copies for inference (the trainer's tiers in
// src/store do the same per block).
#pragma once
#include <vector>

#include "io/safetensors.h"
#include "model/architecture.h"

namespace zotune {

// The checkpoint's name for a table entry: the HF name, or the name without the
// base-model prefix ("transformer.", "model.") that base-model checkpoints use.
// Throws naming the directory and tensor if neither exists.
std::string resolve_tensor_name(const Architecture& arch, const Checkpoint& ckpt, const TensorSpec& spec);

// The checkpoint's view of a table entry after checking its shape and that its
// dtype is F32, F16 or BF16 and that every value is finite; errors name the
// file and tensor.
TensorView checked_view(const Architecture& arch, const Checkpoint& ckpt, const TensorSpec& spec);

// Throws naming the file, tensor and index when a float tensor holds NaN or Inf
// (checked_view calls it: every weight zotune loads is finite). `v` is a view
// of a read-only file mapping (a Checkpoint's): it is read in 32 MB pieces whose
// pages are dropped after the check, so resident memory does not grow.
void check_finite(const TensorView& v, const std::string& file, const std::string& name);

// Copies/upcasts a stored float tensor (F32/F16/BF16) into fp32.
void upcast_to_f32(const TensorView& v, float* out);

// All parameters as fp32. F32 tensors are used in place from the mmap (zero
// copy); F16/BF16 tensors are upcast once.
class ModelWeights {
 public:
  ModelWeights(const Architecture& arch, const Checkpoint& ckpt);
  ParamPtrs ptrs() const { return ptrs_; }
  DType stored_dtype(std::size_t id) const { return dtypes_[id]; }

 private:
  std::vector<AlignedBuffer<float>> owned_;
  std::vector<const float*> ptrs_;
  std::vector<DType> dtypes_;
};

}  // namespace zotune
