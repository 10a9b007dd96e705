// The process environment the compute libraries read when they load: OpenMP's
// wait policy and OpenBLAS's kernel set. Both are read before main, so a
// program that wants other values sets them and re-executes itself once.
//
// OpenBLAS picks its kernels from a CPU model table; a CPU newer than the
// installed library falls back to SSE3 kernels (Debian 12's 0.3.21 on a Xeon
// of family 6 model 207: 4.5x slower GEMMs). zotune chooses the kernel set from
// the CPU's features instead (openblas_core_for), so any CPU with AVX-512 gets
// the AVX-512 kernels whatever its model number. A user's own
// OPENBLAS_CORETYPE or OMP_WAIT_POLICY is kept.
#pragma once
#include <string>

#include "base/cpu_features.h"

namespace zotune::kernels {

// OpenBLAS kernel set for these features (a DYNAMIC_ARCH core name):
// AVX-512 F/CD/BW/DQ/VL -> "SkylakeX", AVX2+FMA -> "Haswell", AVX ->
// "Sandybridge", SSE4.2 -> "Nehalem", else "Prescott".
const char* openblas_core_for(const CpuFeatures& f);

// What this process computes with, for --dry-run and bench reports.
struct ComputeInfo {
  std::string gemm;          // compute backend and its kernels, e.g. "openblas SkylakeX"
  std::string isa;           // Highway target of zotune's own kernels, e.g. "AVX3_ZEN4"
  std::string cpu_features;  // cpu_feature_names() of this CPU
  // bf16 hardware a bf16 backend could use (none is implemented: compute is fp32).
  bool avx512_bf16 = false;
  bool amx = false;          // AMX tiles with bf16, enabled by the OS
};
ComputeInfo compute_info();

// Programs call this first thing in main (argv as given to main). Unless the
// user chose them: OMP_WAIT_POLICY=passive (libgomp's default, spin, makes
// every parallel region wait for a descheduled thread on a busy 2-core VM:
// measured, a tiny-model run 2.6x slower under load) and OPENBLAS_CORETYPE =
// openblas_core_for(this CPU). If either changes what the loaded libraries
// use, the program re-executes itself once (if exec fails it carries on).
void ensure_compute_env(char** argv);

}  // namespace zotune::kernels
