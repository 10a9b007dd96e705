// The optional fp32 backend on oneDNN's own jit sgemm (dnnl_sgemm, what its
// matmul runs as "gemm:jit"); built when CMake finds oneDNN (apt-get install
// libdnnl-dev), chosen with ZOTUNE_GEMM=onednn (gemm.cpp), libdnnl opened then.
//
// Same bits for any thread count, as the OpenBLAS backend: C is cut into the
// tiles kernels/blas_tiles.h picks from the shape alone and each tile is one
// dnnl_sgemm call, which runs single-threaded inside the OpenMP region over
// tiles (oneDNN's OpenMP build takes the threads of the calling context).
// Weights are read as stored, in either layout: nothing is packed.
// docs/architecture.md ("Packed W±") has the measurements.
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "base/error.h"
#include "kernels/blas_tiles.h"
#include "kernels/gemm.h"

namespace zotune::kernels {

namespace {

// libdnnl is opened when this backend is first used, not linked: a process on
// the default backend does not carry its pages (+2 MB of peak RSS measured on
// the tiny presets when it was linked).
struct Dnnl {
  decltype(&dnnl_sgemm) sgemm;
  decltype(&dnnl_version) version;
};

const Dnnl& dnnl() {
  static const Dnnl d = [] {
    void* lib = dlopen(ZOTUNE_DNNL_SONAME, RTLD_NOW | RTLD_LOCAL);
    check(lib != nullptr, "ZOTUNE_GEMM=onednn: cannot load ", ZOTUNE_DNNL_SONAME, " (apt-get install libdnnl2): ",
          dlerror());
    Dnnl f{reinterpret_cast<decltype(&dnnl_sgemm)>(dlsym(lib, "dnnl_sgemm")),
           reinterpret_cast<decltype(&dnnl_version)>(dlsym(lib, "dnnl_version"))};
    check(f.sgemm != nullptr && f.version != nullptr, "ZOTUNE_GEMM=onednn: ", ZOTUNE_DNNL_SONAME,
          " lacks dnnl_sgemm or dnnl_version");
    return f;
  }();
  return d;
}

// Arguments are checked before (checked_sgemm), so dnnl_sgemm fails only
// when out of memory for its packing buffers.
void onednn_tile(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const dnnl_status_t st =
      dnnl().sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  check(st == dnnl_success, "matmul (onednn): dnnl_sgemm failed with status ", static_cast<int>(st), " for ", m, "x",
        k, "x", n);
}

class OneDnnBackend final : public ComputeBackend {
 public:
  std::string name() const override {
    const dnnl_version_t* v = dnnl().version();
    return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           " sgemm";
  }
  std::string id() const override { return "onednn"; }
  bool handles(DType x, DType w) const override { return x == DType::F32 && w == DType::F32; }
  void matmul(const MatmulArgs& a) const override {
    dnnl();  // open the library on this thread: an error must not be thrown inside the tiles' parallel region
    detail::fp32_matmul(onednn_tile, a);
  }
  // The jit sgemm reads either layout (it packs per call, as OpenBLAS does).
  WeightFormat working_format(DType, WeightLayout layout) const override { return {DType::F32, layout}; }
  // Peak RSS of the tiny-preset runs of test_memory_plan (PlanVsRss) rose by
  // 8.7 MB with this backend (libdnnl's pages, the jit sgemm's code and buffers).
  uint64_t overhead_bytes() const override { return uint64_t{9} << 20; }
};

}  // namespace

const ComputeBackend& onednn_backend() {
  static const OneDnnBackend b;
  return b;
}

}  // namespace zotune::kernels
