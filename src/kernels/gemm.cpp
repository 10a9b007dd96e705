// sgemm: a thin, checked wrapper over OpenBLAS (kernels/blas_tiles.h).
#include <algorithm>
#include <climits>
#include <utility>

#include "base/error.h"
#include "kernels/blas_tiles.h"
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
  detail::sgemm_tiles(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace zotune::kernels
