#include "kernels/blas_tiles.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace zotune::kernels::detail {

namespace {

// Multiply-adds per tile below which another tile costs more (a call, its
// packing) than it brings: ~0.1 ms of one core.
constexpr int64_t kTileWork = int64_t{1} << 22;
// At most this many tiles: every tile packs its operands again, and with 8
// tiles a gpt2-124m step ran 6-7 % slower than OpenBLAS's own threading; 2
// tiles (one per core here) ran level with it (interleaved bench, 2 threads).
constexpr int64_t kMaxTiles = 2;
constexpr int64_t kAlign = 16;  // OpenBLAS's register blocks: tiles stay whole multiples

int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

// OpenBLAS 0.3.21 (SkylakeX and Cooperlake kernels) computes a row-major
// A * B^T with at most 1200 outputs, K >= 32 and M*N*K <= 1e6 with its small
// "TN" kernel (sgemm_small_kernel_permit_skylakex.c, the row-major call being
// the column-major transposed one), whose rounding differs from the packed
// path's. Which path a row takes then depends on how many rows share the call:
// a row computed in a call of 10 rows differs from the same row in a call of
// 64 (measured). Every other path of those kernel sets gives each row the same
// bits whatever the row count (measured for NN and NT, 1 to 512 rows), so a
// batch split over data-parallel ranks would compute the same rows. Rows of
// such a small call are therefore computed in a call padded with zero rows to
// more than 1200 outputs. (The Haswell kernels' packed path itself depends on
// the row count: no padding helps there.)
constexpr int64_t kSmallOutputs = 1200;

bool small_nt(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t K) {
  return !trans_a && trans_b && m * n <= kSmallOutputs && K >= 32 && m * n * K <= 1000000;
}

// C[m, n] = alpha * A[m, K] B^T + beta * C through a call of more than
// kSmallOutputs outputs: A's rows and then zeros in a scratch, C's rows copied back.
void sgemm_nt_padded(int64_t m, int64_t n, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t rows = kSmallOutputs / n + 1;
  thread_local std::vector<float> a, c;
  a.assign(static_cast<std::size_t>(rows * K), 0.0f);
  c.assign(static_cast<std::size_t>(rows * n), 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(a.data() + i * K, A + i * lda, sizeof(float) * static_cast<std::size_t>(K));
    if (beta != 0.0f) std::memcpy(c.data() + i * n, C + i * ldc, sizeof(float) * static_cast<std::size_t>(n));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n), static_cast<int>(K),
              alpha, a.data(), static_cast<int>(K), B, static_cast<int>(ldb), beta, c.data(), static_cast<int>(n));
  for (int64_t i = 0; i < m; ++i)
    std::memcpy(C + i * ldc, c.data() + i * n, sizeof(float) * static_cast<std::size_t>(n));
}

}  // namespace

GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K) {
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  const int64_t tiles = std::clamp<int64_t>(work / kTileWork, 1, kMaxTiles);
  // Cut the longer side only: the shorter operand is packed once per tile.
  if (N >= M) return {M, std::max(kAlign, round_up((N + tiles - 1) / tiles, kAlign))};
  return {std::max(kAlign, round_up((M + tiles - 1) / tiles, kAlign)), N};
}

void sgemm_tiles(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const GemmTiles t = gemm_tiles(M, N, K);
  const int64_t tm = (M + t.rows - 1) / t.rows, tn = (N + t.cols - 1) / t.cols;
  const auto tile = [&](int64_t k) {
    const int64_t i = k / tn * t.rows, j = k % tn * t.cols;
    const int64_t m = std::min(t.rows, M - i), n = std::min(t.cols, N - j);
    const float* a = trans_a ? A + i : A + i * lda;
    const float* b = trans_b ? B + j * ldb : B + j;
    if (small_nt(trans_a, trans_b, m, n, K))
      return sgemm_nt_padded(m, n, K, alpha, a, lda, b, ldb, beta, C + i * ldc + j, ldc);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(K), alpha, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, C + i * ldc + j, static_cast<int>(ldc));
  };
  // OpenBLAS (OpenMP build) runs single-threaded inside an active parallel
  // region or when OpenMP has one thread, and follows omp_get_max_threads()
  // otherwise: so with more than one thread every call is made inside the
  // region, even when there is only one tile.
  if (omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (int64_t k = 0; k < tm * tn; ++k) tile(k);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t k = 0; k < tm * tn; ++k) tile(k);
}

}  // namespace zotune::kernels::detail
