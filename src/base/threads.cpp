#include "base/threads.h"

#include <cblas.h>
#include <omp.h>

namespace zotune {

void set_compute_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int compute_threads() { return omp_get_max_threads(); }

}  // namespace zotune
