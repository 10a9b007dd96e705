#include "kernels/compute_env.h"

#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>

#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace zotune::kernels {

const char* openblas_core_for(const CpuFeatures& f) {
  // sgemm is all zotune asks of OpenBLAS: Cooperlake's and SapphireRapids'
  // kernel sets add only bf16 routines to SkylakeX's, so SkylakeX serves
  // every AVX-512 CPU (and exists in every DYNAMIC_ARCH build since 0.3.6).
  if (f.avx512_core()) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  if (f.avx) return "Sandybridge";
  if (f.sse42) return "Nehalem";
  return "Prescott";
}

ComputeInfo compute_info() {
  const CpuFeatures& f = cpu_features();
  return {compute_backend().name(), isa_name(), cpu_feature_names(f), f.avx512_bf16, f.amx_tile && f.amx_bf16};
}

void ensure_compute_env(char** argv) {
  bool reexec = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    reexec = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    const char* core = openblas_core_for(cpu_features());
    setenv("OPENBLAS_CORETYPE", core, 1);  // child processes inherit the choice
    reexec = reexec || strcasecmp(openblas_get_corename(), core) != 0;
  }
  if (reexec) execv("/proc/self/exe", argv);
}

}  // namespace zotune::kernels
