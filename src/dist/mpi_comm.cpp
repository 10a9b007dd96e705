// The MPI process context (issue #12): Comm on MPI_COMM_WORLD. Built only with
// -DZOTUNE_MPI=ON (CMake's default when MPI is found); created by
// process_comm() only when a launcher started this process, so a plain
// `zotune train` never initialises MPI. Every call comes from the main thread
// (compute threads never talk to other ranks): MPI_THREAD_FUNNELED.
#define OMPI_SKIP_MPICXX 1  // the C API only (no deprecated C++ bindings to link)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "base/error.h"
#include "dist/comm.h"

namespace zotune {

namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("MPI: ", what, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
}

// An MPI-3 shared-memory window over the ranks of one node
// (MPI_COMM_TYPE_SHARED): node rank 0 allocates the whole region, the others
// map it (MPI_Win_shared_query). One passive-target epoch (lock_all) spans the
// window's life; barrier() is MPI_Win_sync + MPI_Barrier + MPI_Win_sync, the
// standard pattern that orders plain loads and stores across the node's ranks.
class MpiNodeShare final : public NodeShare {
 public:
  MpiNodeShare(std::size_t bytes, int world_rank) {
    mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node_),
              "MPI_Comm_split_type (node)");
    MPI_Comm_rank(node_, &rank_);
    MPI_Comm_size(node_, &size_);
    void* mine = nullptr;
    // 64 spare bytes: the region starts at the window's first 64-byte boundary.
    const auto mine_bytes = static_cast<MPI_Aint>(rank_ == 0 ? bytes + 64 : 0);
    mpi_check(MPI_Win_allocate_shared(mine_bytes, 1, MPI_INFO_NULL, node_, &mine, &win_),
              "MPI_Win_allocate_shared (node weights)");
    MPI_Aint got = 0;
    int unit = 0;
    void* window = nullptr;
    mpi_check(MPI_Win_shared_query(win_, 0, &got, &unit, &window), "MPI_Win_shared_query");
    check(static_cast<std::size_t>(got) >= bytes + 64, "MPI shared window: ", got, " bytes, asked for ", bytes + 64);
    const auto at = reinterpret_cast<std::uintptr_t>(window);
    base_ = static_cast<unsigned char*>(window) + (64 - at % 64) % 64;
    bytes_ = bytes;
    mpi_check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
  }
  ~MpiNodeShare() override {
    int done = 0;
    MPI_Finalized(&done);
    if (done) return;
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
    MPI_Comm_free(&node_);
  }
  int node_rank() const override { return rank_; }
  int node_size() const override { return size_; }
  void* data() override { return base_; }
  std::size_t size() const override { return bytes_; }
  void barrier() override {
    mpi_check(MPI_Win_sync(win_), "MPI_Win_sync");
    mpi_check(MPI_Barrier(node_), "MPI_Barrier (node)");
    mpi_check(MPI_Win_sync(win_), "MPI_Win_sync");
  }

 private:
  MPI_Comm node_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  int rank_ = 0, size_ = 1;
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
};

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
    }
    // Errors come back as codes (mpi_check turns them into zotune::Error)
    // instead of MPI's default of aborting without our message.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    MPI_Comm node = MPI_COMM_NULL;
    mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type (node)");
    MPI_Comm_size(node, &on_node_);
    MPI_Comm_free(&node);
  }
  ~MpiComm() override {
    int done = 0;
    MPI_Finalized(&done);
    if (owns_ && !done) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  std::vector<double> allgather(std::span<const double> mine) override {
    const int n = static_cast<int>(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(world_)), offsets(static_cast<std::size_t>(world_));
    mpi_check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather (counts)");
    int total = 0;
    for (int r = 0; r < world_; ++r) {
      offsets[static_cast<std::size_t>(r)] = total;
      total += counts[static_cast<std::size_t>(r)];
    }
    count(sizeof n + mine.size_bytes());
    std::vector<double> all(static_cast<std::size_t>(total));
    mpi_check(MPI_Allgatherv(mine.data(), n, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE,
                             MPI_COMM_WORLD),
              "MPI_Allgatherv");
    return all;
  }

  void broadcast(std::vector<uint8_t>& blob, int root) override {
    check(root >= 0 && root < world_, "broadcast: root rank ", root, " is not in a world of ", world_);
    unsigned long long n = blob.size();
    count(rank_ == root ? sizeof n + blob.size() : 0);
    mpi_check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Bcast (size)");
    blob.resize(static_cast<std::size_t>(n));
    check(n <= static_cast<unsigned long long>(INT32_MAX), "broadcast: ", n, " bytes is more than one message");
    mpi_check(MPI_Bcast(blob.data(), static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }

  void barrier() override {
    count(0);
    mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }

  std::unique_ptr<NodeShare> share_node(std::size_t bytes) override {
    return std::make_unique<MpiNodeShare>(bytes, rank_);
  }
  int ranks_on_node() const override { return on_node_; }
  // Open MPI's shared windows are files in /dev/shm (its shmem mmap default):
  // a window larger than the free space there fails, or faults on first touch.
  std::size_t node_share_room() const override {
    struct statvfs sv {};
    if (::statvfs("/dev/shm", &sv) != 0) return 0;
    return static_cast<std::size_t>(sv.f_bavail) * static_cast<std::size_t>(sv.f_frsize);
  }

  [[noreturn]] void abort(const std::string& why) override {
    std::fprintf(stderr, "zotune: error (rank %d of %d): %s\n", rank_, world_, why.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; if it did, end this rank anyway
  }

 private:
  int rank_ = 0, world_ = 1, on_node_ = 1;
  bool owns_ = false;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace zotune
