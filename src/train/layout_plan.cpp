#include "train/layout_plan.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "base/error.h"

namespace zotune {

namespace {

// One MPI collective among `ranks` ranks, each contributing `bytes`.
double collective_s(const NetworkModel& net, int ranks, uint64_t bytes) {
  const double rounds = std::ceil(std::log2(static_cast<double>(ranks)));
  return net.latency_s * rounds + static_cast<double>(ranks - 1) * static_cast<double>(bytes) / net.bytes_per_s;
}

std::string mb(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MB", static_cast<double>(b) / 1048576.0);
  return s;
}

}  // namespace

NetworkModel network_model(int nodes, std::optional<double> latency_us, std::optional<double> gbit_per_s) {
  NetworkModel n;
  if (nodes > 1) {
    n = {50e-6, 10e9 / 8, "LAN"};
  } else {
    n = {2e-6, 5e9, "shared memory"};
  }
  if (latency_us) {
    check(*latency_us >= 0 && std::isfinite(*latency_us), "--net-latency-us must be >= 0, not ", *latency_us);
    n.latency_s = *latency_us * 1e-6;
    n.name = "given";
  }
  if (gbit_per_s) {
    check(*gbit_per_s > 0 && std::isfinite(*gbit_per_s), "--net-gbit must be > 0, not ", *gbit_per_s);
    n.bytes_per_s = *gbit_per_s * 1e9 / 8;
    n.name = "given";
  }
  return n;
}

int node_weight_copies(NodeWeights mode, int ranks_per_node) {
  return mode == NodeWeights::Shared ? 1 : ranks_per_node;
}

ClusterPlan plan_cluster(const Architecture& arch, const PlanInput& global, const ClusterInput& in,
                         const MachineConstants& mc) {
  const RankLayout& L = in.layout;
  check(L.data >= 1 && (L.pert == 1 || L.pert == 2) && L.groups >= 1, "the rank layout (", L.flags(),
        ") needs --data-parallel >= 1, --pert-parallel 1 or 2, --direction-groups >= 1");
  check(in.ranks_per_node >= 1 && in.nodes >= 1, "--ranks-per-node and --nodes must be >= 1");
  check(in.ranks_per_node * in.nodes == L.ranks(), "--nodes ", in.nodes, " x --ranks-per-node ", in.ranks_per_node,
        " = ", in.ranks_per_node * in.nodes, " ranks, but the layout (", L.flags(), ") has ", L.ranks());
  check(in.directions >= 1 && in.directions % L.groups == 0, "--directions ", in.directions,
        " does not split over --direction-groups ", L.groups);
  check(global.batch % L.data == 0, "--batch-size ", global.batch, " does not split over ", L.data,
        " data-parallel ranks");
  check(in.net.bytes_per_s > 0, "the network model needs a bandwidth");

  ClusterPlan p;
  p.input = in;
  p.global_batch = global.batch;
  PlanInput rank_in = global;
  rank_in.batch = global.batch / L.data;
  rank_in.directions = in.directions / L.groups;
  p.rank = plan_memory(arch, rank_in, mc);

  const int R = in.ranks_per_node, N = L.ranks();
  if (N > 1) p.mpi_overhead = kMpiRankOverheadBytes;
  const uint64_t per_rank_rest = p.rank_total() - p.rank.bytes.weights;
  p.node_weights = p.rank.bytes.weights * static_cast<uint64_t>(node_weight_copies(in.weights, R));
  p.node_rest = per_rank_rest * static_cast<uint64_t>(R);

  // plan_memory times one process with the whole node: both passes of its
  // slice and one parameter sweep. A rank runs K/G directions, 2/P passes
  // each, with 1/R of the node, in one sweep (its blocks read once). With one
  // θ per node whose ranks all belong to one direction group (the same
  // perturbations) and run one direction, the node's ranks split the
  // parameter pass (store/node_shared_store.h): the node makes it once, not R times.
  const double sweeps = static_cast<double>(in.directions / L.groups);
  const bool split_pass = in.weights == NodeWeights::Shared && (L.data * L.pert) % R == 0 && sweeps == 1;
  p.compute_s = p.rank.compute_s * sweeps / L.pert * R;
  p.param_pass_s = p.rank.param_pass_s * sweeps * (split_pass ? 1 : R);
  p.disk_s = p.rank.disk_s;

  if (N > 1) {
    const uint64_t d = sizeof(double), len = sizeof(int);
    const uint64_t terms = static_cast<uint64_t>(rank_in.batch * std::max<int64_t>(global.seq_len - 1, 1));
    std::vector<uint64_t> calls = {d * (1 + 2 * static_cast<uint64_t>(sweeps)),  // reduce_directions' header
                                   d * static_cast<uint64_t>(sweeps) * static_cast<uint64_t>(2 / L.pert) * terms};
    if (in.train) calls.push_back(d);  // the agreed stop signal
    for (uint64_t c : calls) {
      p.bytes_per_rank_per_step += len + c;
      p.comm_s += collective_s(in.net, N, len) + collective_s(in.net, N, c);
      p.mpi_collectives_per_step += 2;
    }
  }
  const bool disk = global.offload == Offload::Disk;
  const double work = p.compute_s + p.param_pass_s;
  p.step_s = (disk && global.overlap ? std::max(work, p.disk_s) : work + p.disk_s) + p.comm_s;
  p.tokens_per_s = static_cast<double>(global.batch * global.seq_len) / p.step_s;
  return p;
}

std::string cluster_table(const ClusterPlan& p) {
  const ClusterInput& in = p.input;
  const MemoryPlan& r = p.rank;
  std::ostringstream os;
  os << "cluster plan: " << in.nodes << " node(s) x " << in.ranks_per_node << " rank(s) = " << in.layout.ranks()
     << " ranks (" << in.layout.flags() << "), --directions " << in.directions << ", B=" << p.global_batch << " ("
     << r.input.batch << " per data slice) T=" << r.input.seq_len << "\n";
  os << "  per rank: weights " << mb(r.bytes.weights) << " + working, streamed, activations, staging, overhead"
     << (p.mpi_overhead ? " (MPI's included) " : " ") << mb(p.rank_total() - r.bytes.weights) << " = "
     << mb(p.rank_total()) << "\n";
  os << "  per node: weights " << mb(p.node_weights) << " ("
     << node_weight_copies(in.weights, in.ranks_per_node) << (in.weights == NodeWeights::Shared ? " node-shared" : " per-rank")
     << " cop" << (node_weight_copies(in.weights, in.ranks_per_node) == 1 ? "y" : "ies") << ") + " << in.ranks_per_node
     << " x the rest " << mb(p.node_rest) << " = " << mb(p.node_total()) << "\n";
  char t[256];
  std::snprintf(t, sizeof t,
                "  time per step ~%.4g s: compute %.4g s, parameter pass %.4g s, disk %.4g s, collectives %.3g s\n",
                p.step_s, p.compute_s, p.param_pass_s, p.disk_s, p.comm_s);
  os << t;
  std::snprintf(t, sizeof t,
                "  collectives: %d MPI collectives, %llu bytes sent per rank per step; %s: latency %.3g us, %.3g Gbit/s\n",
                p.mpi_collectives_per_step, static_cast<unsigned long long>(p.bytes_per_rank_per_step), in.net.name,
                in.net.latency_s * 1e6, in.net.bytes_per_s * 8 / 1e9);
  os << t;
  std::snprintf(t, sizeof t, "  tokens/s ~%.4g (%s; a node's sgemm %.0f GFLOP/s and ZO pass %.3g params/s shared by its ranks)\n",
                p.tokens_per_s, r.machine_measured ? "measured machine" : "assumed machine", r.machine.gemm_gflops,
                r.machine.zo_params_per_s);
  os << t;
  return os.str();
}

Json cluster_json(const ClusterPlan& p) {
  const ClusterInput& in = p.input;
  Json j;
  j["nodes"] = in.nodes;
  j["ranks_per_node"] = in.ranks_per_node;
  j["ranks"] = in.layout.ranks();
  j["data_parallel"] = in.layout.data;
  j["pert_parallel"] = in.layout.pert;
  j["direction_groups"] = in.layout.groups;
  j["directions"] = in.directions;
  j["global_batch"] = p.global_batch;
  j["node_weights"] = in.weights == NodeWeights::Shared ? "shared" : "per_rank";
  j["rank_bytes"] = p.rank_total();
  j["mpi_overhead_bytes"] = p.mpi_overhead;
  j["node_bytes"] = {{"weights", p.node_weights}, {"rest", p.node_rest}, {"total", p.node_total()}};
  j["seconds"] = {{"compute", p.compute_s}, {"param_pass", p.param_pass_s}, {"disk", p.disk_s},
                  {"collectives", p.comm_s}, {"step", p.step_s}};
  j["bytes_per_rank_per_step"] = p.bytes_per_rank_per_step;
  j["mpi_collectives_per_step"] = p.mpi_collectives_per_step;
  j["network"] = {{"model", in.net.name}, {"latency_us", in.net.latency_s * 1e6},
                  {"gbit_per_s", in.net.bytes_per_s * 8 / 1e9}};
  j["tokens_per_sec"] = p.tokens_per_s;
  j["rank_plan"] = plan_json(p.rank);
  return j;
}

}  // namespace zotune
