// Thread-count-independent GEMM on a single-threaded BLAS call (OpenBLAS, oneDNN). OpenBLAS's own threading does not
// give the same bits with 1 and 2 threads (measured on 0.3.21, SkylakeX: ~3 %
// of C differs in the last bit for 128 x 192 x 64 — it takes its small "direct"
// kernel only when single-threaded and cuts M and N by the thread count), so a
// ZO run's losses, g and weights depended on --threads. Here C is cut into
// tiles that depend on the shape alone, each tile is one single-threaded
// OpenBLAS call, and threads share out the tiles: every element of C is
// computed by the same call whatever the thread count.
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace zotune::kernels::detail {

// One tile's product on one thread: row-major C[m, n] = alpha op(A) op(B) +
// beta C, arguments as cblas_sgemm (OpenBLAS, oneDNN's dnnl_sgemm).
using TileGemm = void (*)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Row-major C[M, N] = alpha * op(A) op(B) + beta * C (arguments as cblas_sgemm,
// already checked by the caller), each tile one call of `gemm`. The library
// behind `gemm` must run single-threaded inside an active OpenMP parallel
// region and when OpenMP has one thread (OpenBLAS's and oneDNN's OpenMP builds do).
void sgemm_tiles(TileGemm gemm, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// kernels::sgemm on `gemm`: checks the arguments (sizes within int), handles
// M or N = 0 (nothing), K = 0 or alpha = 0 (C = beta C, not reading C when
// beta = 0), then sgemm_tiles.
void checked_sgemm(TileGemm gemm, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// An fp32 x fp32 linear layer (ComputeBackend::matmul's arguments) as
// checked_sgemm on `gemm`: what every fp32 backend runs.
void fp32_matmul(TileGemm gemm, const MatmulArgs& a);

// Tiles of C along M and N (rows, cols per tile) for a shape: exposed for the test.
struct GemmTiles {
  int64_t rows, cols;
};
GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K);

}  // namespace zotune::kernels::detail
