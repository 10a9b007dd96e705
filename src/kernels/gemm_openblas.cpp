// The fp32 backend: sgemm, a thin checked wrapper over OpenBLAS (thread-count
// independent tiles, kernels/blas_tiles.h),
// and ComputeBackend for fp32 activations × fp32 weights on top of it.
#include <cblas.h>

#include <cstring>
#include <vector>

#include "kernels/blas_tiles.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zotune::kernels {

namespace {

// OpenBLAS 0.3.21 (SkylakeX and Cooperlake kernels) computes a row-major
// A * B^T with at most 1200 outputs, K >= 32 and M*N*K <= 1e6 with its small
// "TN" kernel (sgemm_small_kernel_permit_skylakex.c, the row-major call being
// the column-major transposed one), whose rounding differs from the packed
// path's. Which path a row takes then depends on how many rows share the call:
// a row computed in a call of 10 rows differs from the same row in a call of
// 64 (measured). Every other path of those kernel sets gives each row the same
// bits whatever the row count (measured for NN and NT, 1 to 512 rows), so a
// batch split over data-parallel ranks computes the same rows. Rows of such a
// small call are therefore computed in a call padded with zero rows to more
// than 1200 outputs. (The Haswell kernels' packed path itself depends on the
// row count: no padding helps there.)
constexpr int64_t kSmallOutputs = 1200;

bool small_nt(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k) {
  return !trans_a && trans_b && m * n <= kSmallOutputs && k >= 32 && m * n * k <= 1000000;
}

// C[m, n] = alpha * A[m, k] B^T + beta * C through a call of more than
// kSmallOutputs outputs: A's rows and then zeros in a scratch, C's rows copied back.
void sgemm_nt_padded(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t rows = kSmallOutputs / n + 1;
  thread_local std::vector<float> a, c;
  a.assign(static_cast<std::size_t>(rows * k), 0.0f);
  c.assign(static_cast<std::size_t>(rows * n), 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(a.data() + i * k, A + i * lda, sizeof(float) * static_cast<std::size_t>(k));
    if (beta != 0.0f) std::memcpy(c.data() + i * n, C + i * ldc, sizeof(float) * static_cast<std::size_t>(n));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k),
              alpha, a.data(), static_cast<int>(k), B, static_cast<int>(ldb), beta, c.data(), static_cast<int>(n));
  for (int64_t i = 0; i < m; ++i)
    std::memcpy(C + i * ldc, c.data() + i * n, sizeof(float) * static_cast<std::size_t>(n));
}

// One tile on OpenBLAS (sizes already checked to fit its int).
void openblas_tile(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (small_nt(trans_a, trans_b, m, n, k)) return sgemm_nt_padded(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
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
