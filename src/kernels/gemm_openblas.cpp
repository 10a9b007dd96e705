// The fp32 backend: sgemm, a thin checked wrapper over OpenBLAS (thread-count
// independent tiles, kernels/blas_tiles.h),
// and ComputeBackend for fp32 activations × fp32 weights on top of it.
#include <cblas.h>

#include "kernels/blas_tiles.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zotune::kernels {

namespace {

// One tile on OpenBLAS (sizes already checked to fit its int).
void openblas_tile(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, A, static_cast<int>(lda), B,
              static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  detail::checked_sgemm(openblas_tile, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {

class OpenBlasBackend final : public ComputeBackend {
 public:
  std::string name() const override { return std::string("openblas ") + openblas_get_corename(); }
  std::string id() const override { return "openblas"; }
  bool handles(DType x, DType w) const override { return x == DType::F32 && w == DType::F32; }
  void matmul(const MatmulArgs& a) const override { detail::fp32_matmul(openblas_tile, a); }
  // sgemm reads either layout at full speed (the transposed operand is packed
  // per call anyway), so working copies stay fp32 in the checkpoint's layout.
  WeightFormat working_format(DType, WeightLayout layout) const override { return {DType::F32, layout}; }
};

}  // namespace

const ComputeBackend& openblas_backend() {
  static const OpenBlasBackend b;
  return b;
}

}  // namespace zotune::kernels
