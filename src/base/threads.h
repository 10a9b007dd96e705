// One knob for the number of compute threads: OpenMP kernels and OpenBLAS.
#pragma once

namespace zotune {
// n <= 0 keeps the default (OMP_NUM_THREADS or all cores).
void set_compute_threads(int n);
int compute_threads();

// libgomp reads OMP_WAIT_POLICY when it loads, before main. Its default (spin)
// makes every parallel region wait for a descheduled thread on a busy or
// uneven 2-core VM (measured: a tiny-model run 2.6x slower under load), so
// programs call this first thing in main: unless the user chose a policy, it
// sets "passive" and re-executes the program once (argv as given to main).
void ensure_passive_omp_wait(char** argv);
}  // namespace zotune
