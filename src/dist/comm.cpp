#include "dist/comm.h"

#include <cstdlib>
#include <memory>

#include "base/error.h"

namespace zotune {

void Comm::allreduce_sum(std::span<double> values) {
  const std::vector<double> all = allgather(values);
  const std::size_t n = values.size();
  check(all.size() == n * static_cast<std::size_t>(world()), "allreduce_sum: ranks passed different lengths (",
        all.size(), " values from ", world(), " ranks, ", n, " here)");
  for (std::size_t i = 0; i < n; ++i) {
    double s = all[i];
    for (std::size_t r = 1; r < static_cast<std::size_t>(world()); ++r) s += all[r * n + i];
    values[i] = s;
  }
}

void SingleProcessComm::broadcast(std::vector<uint8_t>&, int root) {
  check(root == 0, "broadcast: root rank ", root, " is not in a world of 1");
}

void SingleProcessComm::abort(const std::string& why) { fail(why); }

Comm& single_process_comm() {
  static SingleProcessComm comm;
  return comm;
}

#ifdef ZOTUNE_HAVE_MPI
std::unique_ptr<Comm> make_mpi_comm();  // mpi_comm.cpp
#endif

namespace {
std::unique_ptr<Comm>& started() {
  static std::unique_ptr<Comm> comm;
  return comm;
}
}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (const char* s = std::getenv(v); s && *s) return true;
  return false;
}

Comm& process_comm() {
  auto& c = started();
  if (c) return *c;
  if (launched_by_mpi()) {
#ifdef ZOTUNE_HAVE_MPI
    c = make_mpi_comm();
#else
    const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
    check(!n || std::string(n) == "1", "launched by mpirun with ", n,
          " processes, but this zotune was built without MPI (rebuild with -DZOTUNE_MPI=ON)");
    c = std::make_unique<SingleProcessComm>();
#endif
  } else {
    c = std::make_unique<SingleProcessComm>();
  }
  return *c;
}

Comm* started_process_comm() { return started().get(); }

}  // namespace zotune
