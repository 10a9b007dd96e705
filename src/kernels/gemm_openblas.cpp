// The fp32 backend: sgemm, a thin checked wrapper over OpenBLAS (thread-count
// independent tiles, kernels/blas_tiles.h),
// and ComputeBackend for fp32 activations × fp32 weights on top of it.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "base/error.h"
#include "kernels/blas_tiles.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zotune::kernels {

namespace {

int blas_int(int64_t v, const char* what) {
  check(v >= 0 && v <= INT_MAX, "sgemm: ", what, "=", v, " does not fit the BLAS integer");
  return static_cast<int>(v);
}

// C = beta * C without reading C when beta == 0 (BLAS semantics: C may hold NaN).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    if (beta == 0.0f)
      std::fill(row, row + N, 0.0f);
    else
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  check(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  check(ldc >= N, "sgemm: ldc=", ldc, " < N=", N);
  if (K == 0 || alpha == 0.0f) {
    // OpenBLAS would also do this, but some versions read C when beta == 0.
    scale_c(M, N, beta, C, ldc);
    return;
  }
  check(lda >= (trans_a ? M : K), "sgemm: lda=", lda, " too small for ", trans_a ? "A^T" : "A");
  check(ldb >= (trans_b ? K : N), "sgemm: ldb=", ldb, " too small for ", trans_b ? "B^T" : "B");
  for (const auto& [v, what] : {std::pair<int64_t, const char*>{M, "M"}, {N, "N"}, {K, "K"}, {lda, "lda"},
                                {ldb, "ldb"}, {ldc, "ldc"}})
    blas_int(v, what);  // the BLAS takes int sizes
  // Tiles that depend on the shape alone: the same bits for any thread count.
  detail::sgemm_tiles(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {

class OpenBlasBackend final : public ComputeBackend {
 public:
  std::string name() const override { return std::string("openblas ") + openblas_get_corename(); }
  bool handles(DType x, DType w) const override { return x == DType::F32 && w == DType::F32; }
  void matmul(const MatmulArgs& a) const override {
    const bool out_in = a.w.layout == WeightLayout::OutIn;
    sgemm(false, out_in, a.rows, a.out, a.in, 1.0f, static_cast<const float*>(a.x), a.ldx,
          static_cast<const float*>(a.w.data), out_in ? a.in : a.out, 0.0f, a.y, a.ldy);
  }
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
