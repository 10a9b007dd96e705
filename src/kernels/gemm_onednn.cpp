// The optional fp32 backend on oneDNN's own jit sgemm (dnnl_sgemm, what its
// matmul runs as "gemm:jit"); built when CMake finds oneDNN (apt-get install
// libdnnl-dev) and chosen with ZOTUNE_GEMM=onednn (gemm.cpp).
//
// Same bits for any thread count, as the OpenBLAS backend: C is cut into the
// tiles kernels/blas_tiles.h picks from the shape alone and each tile is one
// dnnl_sgemm call, which runs single-threaded inside the OpenMP region over
// tiles (oneDNN's OpenMP build takes the threads of the calling context).
// Weights are read as stored, in either layout: nothing is packed.
// docs/architecture.md ("Packed W±") has the measurements.
#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "base/error.h"
#include "kernels/blas_tiles.h"
#include "kernels/gemm.h"

namespace zotune::kernels {

namespace {

void onednn_tile(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const dnnl_status_t st =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  check(st == dnnl_success, "matmul (onednn): dnnl_sgemm failed with status ", static_cast<int>(st), " for ", m, "x",
        k, "x", n);
}

class OneDnnBackend final : public ComputeBackend {
 public:
  std::string name() const override {
    const dnnl_version_t* v = dnnl_version();
    return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           " sgemm";
  }
  bool handles(DType x, DType w) const override { return x == DType::F32 && w == DType::F32; }
  void matmul(const MatmulArgs& a) const override {
    const bool out_in = a.w.layout == WeightLayout::OutIn;
    detail::checked_sgemm(onednn_tile, false, out_in, a.rows, a.out, a.in, 1.0f, static_cast<const float*>(a.x), a.ldx,
                          static_cast<const float*>(a.w.data), out_in ? a.in : a.out, 0.0f, a.y, a.ldy);
  }
  // The jit sgemm reads either layout (it packs per call, as OpenBLAS does).
  WeightFormat working_format(DType, WeightLayout layout) const override { return {DType::F32, layout}; }
};

}  // namespace

const ComputeBackend& onednn_backend() {
  static const OneDnnBackend b;
  return b;
}

}  // namespace zotune::kernels
