// The registry of compute backends and matmul's dispatch on dtypes.
#include "kernels/gemm.h"

#include <cstdlib>
#include <string>

#include "base/error.h"

namespace zotune::kernels {

namespace {
// Best first: the first backend that handles a dtype pair runs it. A new
// backend is a new file and one line here.
const ComputeBackend* const* registry() {
  static const ComputeBackend* const backends[] = {&openblas_backend(),
#if ZOTUNE_HAVE_ONEDNN
                                                   &onednn_backend(),
#endif
                                                   nullptr};
  return backends;
}

const ComputeBackend& chosen() {
  const char* env = std::getenv("ZOTUNE_GEMM");
  if (env == nullptr || *env == '\0') return *registry()[0];
  std::string known;
  for (const ComputeBackend* const* b = registry(); *b; ++b) {
    if ((*b)->id() == env) return **b;
    known += (known.empty() ? "" : ", ") + (*b)->id();
  }
  fail("ZOTUNE_GEMM=", env, ": no such compute backend in this build (built: ", known, ")");
}
}  // namespace

const ComputeBackend& compute_backend() {
  static const ComputeBackend& b = chosen();
  return b;
}

const ComputeBackend& backend_for(DType x, DType w) {
  if (compute_backend().handles(x, w)) return compute_backend();
  for (const ComputeBackend* const* b = registry(); *b; ++b)
    if ((*b)->handles(x, w)) return **b;
  fail("matmul: no compute backend multiplies ", dtype_name(x), " activations by ", dtype_name(w), " weights");
}

void matmul(const MatmulArgs& a) {
  MatmulArgs d = a;
  if (d.ldx == 0) d.ldx = d.in;
  if (d.ldy == 0) d.ldy = d.out;
  backend_for(d.x_dtype, d.w.dtype).matmul(d);
}

}  // namespace zotune::kernels
