// Finite checks on stored weights: the index of the first NaN or Inf, by bit
// pattern (exponent all ones), for fp32 and the two 16-bit float formats. Used
// when a checkpoint is opened; memory-bound, split over the OpenMP threads.
// Reference: std::isfinite on the upcast value (tests/unit/test_reliability.cpp).
#pragma once
#include <cstdint>

namespace zotune::kernels {

// -1 when all n values are finite.
int64_t first_nonfinite_f32(const float* x, int64_t n);
int64_t first_nonfinite_bf16(const uint16_t* x, int64_t n);
int64_t first_nonfinite_f16(const uint16_t* x, int64_t n);

}  // namespace zotune::kernels
