// Scalar references for the zo kernels (kernels/zo_kernels.h), written from
// the layout text alone with zotune::Philox4x32 and libm in double, so they
// share no code with the SIMD implementation.
#pragma once
#include <cstdint>

#include "kernels/zo_kernels.h"

namespace zotune::kernels::ref {

// The four Philox words of counter block `block` (the layout's key and counter).
void zo_block_words(uint64_t seed, uint32_t tensor_id, ZoStream stream, uint64_t block,
                    uint32_t out[4]);

// z of elements [begin, begin + n) in double: Box-Muller with std::log,
// std::cos and std::sin; Rademacher and Ones are exact.
void zo_fill_z(uint64_t seed, uint32_t tensor_id, ZDist dist, int64_t begin, int64_t n,
               double* out);

// Rounding-stream noise of elements [begin, begin + n); exact in float.
void zo_fill_uniform(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n, float* out);

// zo_update_perturb element by element in fp32, given z_prev and z for the
// same elements (from kernels::zo_fill_z: the fp32 z is defined by the kernel's
// float math; ref::zo_fill_z checks it to a tolerance, this checks the fused
// arithmetic bitwise). z_prev is read only if upd.active, z only if pert.active;
// minus may be null.
void zo_update_perturb(const ZoUpdate& upd, const ZoPerturb& pert, int64_t n, const float* z_prev,
                       const float* z, float* weights, float* plus, float* minus);

}  // namespace zotune::kernels::ref
