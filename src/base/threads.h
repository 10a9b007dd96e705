// One knob for the number of compute threads: OpenMP kernels and OpenBLAS.
#pragma once

namespace zotune {
// n <= 0 keeps the default (OMP_NUM_THREADS or all cores).
void set_compute_threads(int n);
int compute_threads();

}  // namespace zotune
