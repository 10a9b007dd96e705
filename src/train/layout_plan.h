// The plan of a run laid out over ranks and nodes (issue #12): `zotune train
// --dry-run` with a rank layout (dist/layout.h) and `--ranks-per-node R
// --nodes M`, and the planned figures of `zotune bench` under mpirun. From
// config.json alone, like the one-process memory plan it extends
// (train/memory_plan.h), so it answers for OPT-175B on 64 nodes in
// milliseconds.
//
// Memory. A rank holds what one process of its slice holds (plan_memory with
// B/D sequences and its threads): weights, working copies, streamed chunks,
// activations, staging, process overhead; in a job of several ranks also
// Open MPI's libraries and buffers (kMpiRankOverheadBytes). Per node: R ranks' worth, the
// weights counted once per copy the node stores (node_weight_copies: one per
// rank, or one per node with --share-node-weights: NodeWeights::Shared).
//
// Time per step, every rank doing the same work:
//   compute     (K/G) directions x (2/P) passes of forward_flops(B/D, T), at
//               the node's sgemm rate shared by its R ranks
//   param pass  (K/G) perturbations of every parameter (weights are replicated:
//               data and perturbation parallelism do not shorten it), at the
//               node's fused-ZO rate shared by R ranks; with one θ per node
//               (NodeWeights::Shared) whose R ranks are in one direction group
//               and run one direction each, they split the pass, so it takes
//               the node's rate whole
//   disk        the one-process disk time, once per step: one sweep stages each
//               block for all K/G directions (one rank only)
//   collectives each allgather call is two MPI collectives (lengths, then
//               values), each α·⌈log2 N⌉ + β·(N−1)·bytes (N = D·P·G ranks,
//               bytes: this rank's share) — network_model() gives α, β
//   step        compute + param pass (+ disk, overlapped as one process does)
//               + collectives
// Bytes a rank sends per step (no tensors, nothing that grows with the model):
//   reduce_directions  a header of 1 + 2·(K/G) doubles, then its loss terms:
//                      one double per scored token (language modelling, the
//                      most a batch scores: (T−1) per sequence) per pass it runs
//                      per direction; classification sends one per example
//   stop signal        one double (train only: the ranks agree on SIGINT/SIGTERM)
//   and an int of length per allgather call.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "dist/layout.h"
#include "train/memory_plan.h"

namespace zotune {

// α (seconds per collective round) and β (seconds per byte) of the latency
// model. Defaults (docs/architecture.md "Processes"):
//   shared memory (every rank on one node): α = 2 µs, 5 GB/s
//   LAN (ranks on M > 1 nodes; TCP over 10 Gbit Ethernet): α = 50 µs, 10 Gbit/s
struct NetworkModel {
  double latency_s = 0;
  double bytes_per_s = 0;
  const char* name = "";  // "shared memory", "LAN" or "given"
};
NetworkModel network_model(int nodes, std::optional<double> latency_us = {}, std::optional<double> gbit_per_s = {});

// Who stores the weights on a node: every rank its own copy, or one copy per
// node (--share-node-weights, DistZO2's shared master copy; store/node_shared_store.h).
enum class NodeWeights { PerRank, Shared };
int node_weight_copies(NodeWeights mode, int ranks_per_node);

// What an MPI rank holds beyond a plain process (libmpi and its transports,
// shared-memory buffers): peak RSS of the tiny preset's `zotune bench` as one of
// 2 ranks (btl self,vader) 19.7 MB against 12.3 MB alone.
constexpr uint64_t kMpiRankOverheadBytes = uint64_t{8} << 20;  // 8 MiB

struct ClusterInput {
  RankLayout layout;
  int directions = 1;      // K (--directions), split over layout.groups
  int ranks_per_node = 1;  // R
  int nodes = 1;           // M; R·M must equal layout.ranks()
  NodeWeights weights = NodeWeights::PerRank;
  NetworkModel net;        // network_model(nodes) unless the user gave α, β
  bool train = true;       // count the trainer's per-step stop-signal allgather
};

struct ClusterPlan {
  ClusterInput input;
  MemoryPlan rank;              // one rank: its slice of the batch, its threads
  int64_t global_batch = 0;     // B
  uint64_t mpi_overhead = 0;    // kMpiRankOverheadBytes with more than one rank
  uint64_t rank_total() const { return rank.bytes.total() + mpi_overhead; }
  uint64_t node_weights = 0;    // weights x copies per node
  uint64_t node_rest = 0;       // R x (everything else a rank holds, MPI's share included)
  uint64_t node_total() const { return node_weights + node_rest; }
  // Seconds per step, per rank (all ranks alike).
  double compute_s = 0, param_pass_s = 0, disk_s = 0, comm_s = 0, step_s = 0;
  uint64_t bytes_per_rank_per_step = 0;  // what this rank contributes to collectives
  int mpi_collectives_per_step = 0;
  double tokens_per_s = 0;      // B·T of the global batch over step_s
};

// `global` is the run's plan input with the global batch B (which must split
// over layout.data) and the threads of one rank; `mc` the machine probe of one
// node (all its cores).
ClusterPlan plan_cluster(const Architecture& arch, const PlanInput& global, const ClusterInput& in,
                         const MachineConstants& mc);

std::string cluster_table(const ClusterPlan& p);  // human-readable
Json cluster_json(const ClusterPlan& p);

}  // namespace zotune
