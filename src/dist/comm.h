// The process context: which rank of how many this process is, and the few
// collectives a ZO step needs. Ranks never exchange tensors — only a handful of
// scalars per step (the loss terms of a batch) and, at start, small blobs.
//
// An implementation supplies rank/world and four primitives (allgather of
// doubles, broadcast of a blob, barrier, abort); everything built on them
// (allreduce_sum) lives here, so every implementation reduces in the same fixed
// order and results never depend on a transport's reduction tree. Every
// implementation counts what this rank puts into its collectives (counters():
// the bytes it contributes, not the transport's copies of them), the figure
// `zotune bench` reports per step. The single
// process is `SingleProcessComm`; an MPI implementation is one more file
// deriving from Comm (issue #12). The CLI creates the context and passes it down.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dist/node_share.h"

namespace zotune {

// What this rank has contributed to collectives since the last reset: an
// allgather counts its own values (and any length header the transport
// exchanges), a broadcast the root's blob (and its size) at the root only, a
// barrier nothing.
struct CommCounters {
  uint64_t bytes_sent = 0;
  uint64_t collectives = 0;  // calls of the primitives (allgather, broadcast, barrier)
};

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual int world() const = 0;

  // Every rank's `mine` concatenated in rank order, on every rank; the ranks'
  // lengths may differ.
  virtual std::vector<double> allgather(std::span<const double> mine) = 0;
  // `blob` of rank `root` on every rank (receivers' blobs are resized).
  virtual void broadcast(std::vector<uint8_t>& blob, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with `why` (a single process: throws Error).
  [[noreturn]] virtual void abort(const std::string& why) = 0;
  // `bytes` of memory shared by the ranks of this rank's node (dist/node_share.h).
  // Collective: every rank of the world calls it with the same size. This
  // default is a node of one rank (private memory): right for one process and
  // for any context whose ranks share no memory.
  virtual std::unique_ptr<NodeShare> share_node(std::size_t bytes);
  // How many ranks of the world run on this rank's node (1: none shares its
  // memory), and the bytes share_node() could still get there (under MPI the
  // free space of /dev/shm, where Open MPI backs the window). Local: no
  // communication. The defaults are a node of one rank with no limit.
  virtual int ranks_on_node() const { return 1; }
  virtual std::size_t node_share_room() const { return SIZE_MAX; }

  // values[i] = the sum over ranks of values[i], added in rank order (0, 1, ...)
  // on every rank; every rank passes the same length.
  void allreduce_sum(std::span<double> values);

  const CommCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = {}; }

 protected:
  // Implementations call this once per primitive with the bytes they contribute.
  void count(uint64_t bytes_sent) {
    counters_.bytes_sent += bytes_sent;
    ++counters_.collectives;
  }

 private:
  CommCounters counters_;
};

class SingleProcessComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::vector<double> allgather(std::span<const double> mine) override {
    count(mine.size_bytes());
    return {mine.begin(), mine.end()};
  }
  void broadcast(std::vector<uint8_t>& blob, int root) override;
  void barrier() override { count(0); }
  [[noreturn]] void abort(const std::string& why) override;
};

// A process-wide single-process context, for library callers and tests that
// run without the CLI.
Comm& single_process_comm();

// The world this process was launched into: under mpirun (Open MPI's
// OMPI_COMM_WORLD_SIZE or a PMI launcher's PMI_SIZE / PMIX_RANK in the
// environment) the MPI context (MPI_Init on first call, MPI_Finalize at exit;
// src/dist/mpi_comm.cpp), otherwise the single process, which needs no MPI at
// run time. A build without MPI (-DZOTUNE_MPI=OFF) launched by mpirun throws.
// These three live in the zotune_dist library (process_comm.cpp).
Comm& process_comm();
// The context process_comm() made, or nullptr before its first call (the CLI's
// error handler aborts the whole job through it).
Comm* started_process_comm();
// True when the environment says an MPI launcher started this process.
bool launched_by_mpi();

}  // namespace zotune
