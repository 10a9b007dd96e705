#include "kernels/blas_tiles.h"

#include <omp.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "base/error.h"

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

GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K) {
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  const int64_t tiles = std::clamp<int64_t>(work / kTileWork, 1, kMaxTiles);
  // Cut the longer side only: the shorter operand is packed once per tile.
  if (N >= M) return {M, std::max(kAlign, round_up((N + tiles - 1) / tiles, kAlign))};
  return {std::max(kAlign, round_up((M + tiles - 1) / tiles, kAlign)), N};
}

void sgemm_tiles(TileGemm gemm, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const GemmTiles t = gemm_tiles(M, N, K);
  const int64_t tm = (M + t.rows - 1) / t.rows, tn = (N + t.cols - 1) / t.cols;
  const auto tile = [&](int64_t k) {
    const int64_t i = k / tn * t.rows, j = k % tn * t.cols;
    const int64_t m = std::min(t.rows, M - i), n = std::min(t.cols, N - j);
    const float* a = trans_a ? A + i : A + i * lda;
    const float* b = trans_b ? B + j * ldb : B + j;
    gemm(trans_a, trans_b, m, n, K, alpha, a, lda, b, ldb, beta, C + i * ldc + j, ldc);
  };
  // OpenBLAS and oneDNN (OpenMP builds) run single-threaded inside an active
  // parallel region or when OpenMP has one thread, and follow
  // omp_get_max_threads() otherwise: so with more than one thread every call
  // is made inside the region, even when there is only one tile.
  if (omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (int64_t k = 0; k < tm * tn; ++k) tile(k);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t k = 0; k < tm * tn; ++k) tile(k);
}

void checked_sgemm(TileGemm gemm, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  check(ldc >= N, "sgemm: ldc=", ldc, " < N=", N);
  if (K == 0 || alpha == 0.0f) {
    // The library would also do this, but some OpenBLAS versions read C when beta == 0.
    scale_c(M, N, beta, C, ldc);
    return;
  }
  check(lda >= (trans_a ? M : K), "sgemm: lda=", lda, " too small for ", trans_a ? "A^T" : "A");
  check(ldb >= (trans_b ? K : N), "sgemm: ldb=", ldb, " too small for ", trans_b ? "B^T" : "B");
  for (const auto& [v, what] : {std::pair<int64_t, const char*>{M, "M"}, {N, "N"}, {K, "K"}, {lda, "lda"},
                                {ldb, "ldb"}, {ldc, "ldc"}})
    blas_int(v, what);  // OpenBLAS takes int sizes
  // Tiles that depend on the shape alone: the same bits for any thread count.
  sgemm_tiles(gemm, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}


void fp32_matmul(TileGemm gemm, const MatmulArgs& a) {
  const bool out_in = a.w.layout == WeightLayout::OutIn;
  checked_sgemm(gemm, false, out_in, a.rows, a.out, a.in, 1.0f, static_cast<const float*>(a.x), a.ldx,
                static_cast<const float*>(a.w.data), out_in ? a.in : a.out, 0.0f, a.y, a.ldy);
}

}  // namespace zotune::kernels::detail
