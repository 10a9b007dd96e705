// Memory shared by the ranks of one node (issue #12, --share-node-weights):
// one region every rank on the node maps at once, and a barrier among those
// ranks that also orders their writes to it before the others' later reads.
// Comm::share_node() makes one (collective over the world): under MPI an MPI-3
// shared-memory window on the node's ranks (mpi_comm.cpp), in one process a
// private allocation and a node of one rank. The stores use it through this
// interface only, so the core library never sees MPI.
#pragma once
#include <cstddef>
#include <memory>

namespace zotune {

class NodeShare {
 public:
  virtual ~NodeShare() = default;
  // This rank's place among the ranks of its node (0 .. node_size - 1).
  virtual int node_rank() const = 0;
  virtual int node_size() const = 0;
  // The region (the same bytes on every rank of the node, 64-byte aligned) and its size.
  virtual void* data() = 0;
  virtual std::size_t size() const = 0;
  // Every rank of the node waits here; writes to the region before it are
  // visible to every rank of the node after it.
  virtual void barrier() = 0;
};

// A node of one rank: `bytes` of private memory, a barrier that returns at once.
std::unique_ptr<NodeShare> private_node_share(std::size_t bytes);

}  // namespace zotune
