// The machine's arithmetic limit: fp32 FMA throughput with independent chains
// held in registers (no memory traffic), on the ISA target the kernels use.
// Benchmarks divide achieved GFLOP/s by this, a reference that a mis-detected
// BLAS cannot lower (an sgemm "peak" measured with the same BLAS can).
#pragma once
#include <string>

namespace zotune::kernels {

struct FmaPeak {
  double gflops_1 = 0;  // one thread
  double gflops_n = 0;  // `threads` threads, each running its own chains
  int threads = 1;
  std::string isa;      // Highway target name of the chains ("AVX3_ZEN4", "AVX2", ...)
};

// Best of `rounds` runs of ~`seconds` each, for 1 and `threads` threads
// (threads <= 0: the OpenMP default). Counts an FMA as 2 FLOPs; on targets
// without FMA the chains are multiply + add, the limit of that ISA.
FmaPeak measure_fma_peak(int threads = 0, double seconds = 0.02, int rounds = 3);

}  // namespace zotune::kernels
