// A weight as a compute backend receives it: where its elements are, their
// type and their layout. fp32 in the checkpoint's layout is what every tier
// hands out today; a backend that wants another working format (bf16, a
// blocked/packed layout) says so (kernels::ComputeBackend::working_format) and
// the pass that writes working copies produces it.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace zotune {

// A [out, in] linear map: nn.Linear stores W as [out, in] (OutIn), GPT-2's
// Conv1D as [in, out] (InOut).
enum class WeightLayout : uint8_t { OutIn, InOut };

struct WeightRef {
  const void* data = nullptr;
  DType dtype = DType::F32;
  WeightLayout layout = WeightLayout::OutIn;
};

// What a backend wants working copies in.
struct WeightFormat {
  DType dtype = DType::F32;
  WeightLayout layout = WeightLayout::OutIn;
};

}  // namespace zotune
