// The compute-backend seam: y = x · W for a linear layer, dispatched on
// (activation dtype, weight dtype). A backend is one file implementing
// ComputeBackend plus one line in the registry (gemm.cpp); models call
// matmul() and never name a library. fp32 × fp32 on OpenBLAS
// (gemm_openblas.cpp, the default) and, when built with oneDNN, on oneDNN
// (gemm_onednn.cpp, ZOTUNE_GEMM=onednn); see docs/architecture.md for how a
// bf16/AMX backend plugs in.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/weight_ref.h"

namespace zotune::kernels {

// y[rows, out] = x[rows, in] · W, W a [out, in] map in w's layout. ldx/ldy are
// row strides in elements (0 = dense). y is fp32.
struct MatmulArgs {
  const void* x = nullptr;
  DType x_dtype = DType::F32;
  int64_t rows = 0, in = 0, out = 0;
  int64_t ldx = 0, ldy = 0;
  WeightRef w;
  float* y = nullptr;
};

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  // What runs the products, e.g. "openblas SkylakeX".
  virtual std::string name() const = 0;
  // The word ZOTUNE_GEMM names it by, e.g. "openblas".
  virtual std::string id() const = 0;
  virtual bool handles(DType x, DType w) const = 0;
  // Called only for a (x, w) pair handles() accepted, with dense strides filled in.
  virtual void matmul(const MatmulArgs& a) const = 0;
  // The format this backend wants the working copy of a weight stored in
  // `storage` with checkpoint layout `layout` to be written in.
  virtual WeightFormat working_format(DType storage, WeightLayout layout) const = 0;
  // Resident memory the backend adds to a process beyond the baseline the
  // memory plan counts (train/memory_plan.h: kProcessOverheadBytes, measured
  // with OpenBLAS): its library's pages, jit code and buffers.
  virtual uint64_t overhead_bytes() const { return 0; }
};

// The backend working copies are made for: the one the environment variable
// ZOTUNE_GEMM names (its id(): "openblas", "onednn"), else the
// first in the registry. A name no built backend has is an error naming it.
const ComputeBackend& compute_backend();
// The backend for this dtype pair (compute_backend() if it handles it, else
// the first in the registry that does); throws naming the pair if none does.
const ComputeBackend& backend_for(DType x, DType w);
// Checks the arguments and runs the product on backend_for(x_dtype, w.dtype).
void matmul(const MatmulArgs& a);

// Backends, one per file; the registry in gemm.cpp lists them.
const ComputeBackend& openblas_backend();
#if ZOTUNE_HAVE_ONEDNN
const ComputeBackend& onednn_backend();
#endif

}  // namespace zotune::kernels
