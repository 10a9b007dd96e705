// process_comm(): the context of this launch. Not in zotune_core but in the
// small zotune_dist library (with mpi_comm.cpp), which only the CLI and the MPI
// tests link, so libmpi is loaded only by them (other binaries' memory stays
// as it was; see CMakeLists.txt).
#include <cstdlib>
#include <memory>
#include <string>

#include "base/error.h"
#include "dist/comm.h"

namespace zotune {

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
