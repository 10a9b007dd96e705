// The plan of a run laid out over ranks and nodes (train/layout_plan.h) on the
// config.json of OPT-175B and Llama-3-70B (tests/data/configs, no weights):
// parameter counts, the per-node bytes formula, how each parallel factor
// divides the step, the collectives' bytes and latency, and the CLI's
// --dry-run of a 64-node layout from one process.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "model/architecture.h"
#include "test_util.h"
#include "train/layout_plan.h"

namespace zotune {
namespace {

std::filesystem::path config_dir(const char* name) { return testing::source_dir() / "tests/data/configs" / name; }

// The assumed machine: deterministic figures (the probe is not run in tests).
const MachineConstants kMachine = assumed_machine_constants();

PlanInput input(int64_t B, int64_t T) {
  PlanInput in;
  in.batch = B;
  in.seq_len = T;
  in.threads = 1;
  return in;
}

ClusterPlan plan(const Architecture& arch, const PlanInput& in, RankLayout L, int R, int M, int K = 1,
                 NodeWeights w = NodeWeights::PerRank) {
  ClusterInput ci;
  ci.layout = L;
  ci.directions = K;
  ci.ranks_per_node = R;
  ci.nodes = M;
  ci.weights = w;
  ci.net = network_model(M);
  return plan_cluster(arch, in, ci, kMachine);
}

int64_t params_of(const Architecture& arch) {
  int64_t n = 0;
  for (const auto& t : arch.tensors()) n += t.numel();
  return n;
}

TEST(LayoutPlan, LargeConfigsHaveThePublishedParameterCounts) {
  // OPT-175B by its shape: token and position embeddings (2 offset rows), 96
  // pre-norm layers (4 h x h projections with biases, the MLP h -> 4h -> h with
  // biases, two layer norms), the final norm; the head is tied.
  const int64_t h = 12288, f = 49152, V = 50272, L = 96;
  const int64_t opt = V * h + (2048 + 2) * h + L * (4 * (h * h + h) + 2 * h * f + f + h + 4 * h) + 2 * h;
  EXPECT_EQ(params_of(*load_architecture(config_dir("opt-175b"))), opt);
  EXPECT_NEAR(static_cast<double>(opt), 175e9, 0.01 * 175e9);
  // Llama-3-70B: the 70,553,706,496 of Meta's model card / safetensors index.
  EXPECT_EQ(params_of(*load_architecture(config_dir("llama-3-70b"))), int64_t{70553706496});
}

TEST(LayoutPlan, NodeBytesAreRanksTimesARankWithOneWeightCopyPerRank) {
  for (const char* name : {"opt-175b", "llama-3-70b"}) {
    auto arch = load_architecture(config_dir(name));
    const uint64_t params = static_cast<uint64_t>(params_of(*arch));
    for (int R : {1, 2, 4}) {
      const ClusterPlan p = plan(*arch, input(8 * R, 128), {R, 1, 1}, R, 1);
      const MemoryPlan& r = p.rank;
      EXPECT_EQ(r.input.batch, 8) << name;             // the rank's slice
      EXPECT_EQ(r.bytes.weights, params * 4) << name;  // fp32 in RAM
      EXPECT_EQ(p.node_weights, R * params * 4) << name;
      const uint64_t mpi = R > 1 ? kMpiRankOverheadBytes : 0;  // one process: no MPI
      EXPECT_EQ(p.node_total(), R * (r.bytes.total() + mpi)) << name;
      // The node-shared hook: one copy of the weights, the rest per rank.
      const ClusterPlan s = plan(*arch, input(8 * R, 128), {R, 1, 1}, R, 1, 1, NodeWeights::Shared);
      EXPECT_EQ(s.node_total(), params * 4 + R * (r.bytes.total() + mpi - r.bytes.weights)) << name;
    }
    PlanInput bf16 = input(8, 128);
    bf16.offload = Offload::Ram;
    bf16.storage_dtype = DType::BF16;
    EXPECT_EQ(plan(*arch, bf16, {2, 1, 1}, 2, 1).node_weights, 2 * params * 2) << name;
  }
}

TEST(LayoutPlan, OneRankIsTheOneProcessPlan) {
  auto arch = load_architecture(config_dir("llama-3-70b"));
  const ClusterPlan p = plan(*arch, input(4, 64), {}, 1, 1);
  const MemoryPlan one = plan_memory(*arch, input(4, 64), kMachine);
  EXPECT_EQ(p.node_total(), one.bytes.total());
  EXPECT_DOUBLE_EQ(p.step_s, one.step_s);
  EXPECT_EQ(p.bytes_per_rank_per_step, 0u);
  EXPECT_EQ(p.comm_s, 0.0);
}

TEST(LayoutPlan, EachFactorDividesItsShareOfTheStep) {
  auto arch = load_architecture(config_dir("opt-175b"));
  const PlanInput in = input(64, 256);
  const ClusterPlan one = plan(*arch, in, {}, 1, 1);
  // Data parallelism over 8 nodes: an eighth of the batch per rank, the same
  // parameter sweep (weights are replicated).
  const ClusterPlan ddp = plan(*arch, in, {8, 1, 1}, 1, 8);
  EXPECT_NEAR(ddp.compute_s, one.compute_s / 8, 1e-9 * one.compute_s);
  EXPECT_DOUBLE_EQ(ddp.param_pass_s, one.param_pass_s);
  // Perturbation parallelism on 2 nodes: one pass of two per rank.
  const ClusterPlan pp = plan(*arch, in, {1, 2, 1}, 1, 2);
  EXPECT_NEAR(pp.compute_s, one.compute_s / 2, 1e-9 * one.compute_s);
  EXPECT_DOUBLE_EQ(pp.param_pass_s, one.param_pass_s);
  // Two ranks on one node share its cores: no faster than one rank.
  const ClusterPlan pp1 = plan(*arch, in, {1, 2, 1}, 2, 1);
  EXPECT_NEAR(pp1.compute_s, one.compute_s, 1e-9 * one.compute_s);
  EXPECT_DOUBLE_EQ(pp1.param_pass_s, 2 * one.param_pass_s);
  // ... unless they share one θ: then each makes half of every unit (both in
  // one direction group; two groups perturb differently and each rank makes
  // its own copies).
  EXPECT_DOUBLE_EQ(plan(*arch, in, {1, 2, 1}, 2, 1, 1, NodeWeights::Shared).param_pass_s, one.param_pass_s);
  EXPECT_DOUBLE_EQ(plan(*arch, in, {2, 1, 1}, 2, 1, 1, NodeWeights::Shared).param_pass_s, one.param_pass_s);
  EXPECT_DOUBLE_EQ(plan(*arch, in, {1, 1, 2}, 2, 1, 2, NodeWeights::Shared).param_pass_s, 2 * one.param_pass_s);
  // K = 4 directions over 2 groups: two sweeps per rank.
  const ClusterPlan k1 = plan(*arch, in, {}, 1, 1, 4);
  const ClusterPlan k2 = plan(*arch, in, {1, 1, 2}, 1, 2, 4);
  EXPECT_NEAR(k1.compute_s, 4 * one.compute_s, 1e-9 * one.compute_s);
  EXPECT_NEAR(k2.compute_s, 2 * one.compute_s, 1e-9 * one.compute_s);
  EXPECT_DOUBLE_EQ(k2.param_pass_s, 2 * one.param_pass_s);
}

TEST(LayoutPlan, BytesPerStepFollowTheBatchNotTheModel) {
  // Per rank and step: reduce_directions' header (1 + 2·K/G doubles) and loss
  // terms (one double per scored token, T - 1 per sequence, per pass run per
  // direction), the stop signal (one double), an int of length per allgather.
  auto big = load_architecture(config_dir("opt-175b"));
  auto small = load_architecture(testing::golden_dir() / "gpt2");
  struct Case { RankLayout L; int K; uint64_t bytes; };
  const int64_t B = 8, T = 16;
  for (const Case c : {Case{{2, 1, 1}, 1, 3 * 4 + 8 * (3 + 2 * (B / 2) * (T - 1) + 1)},
                       Case{{1, 2, 1}, 1, 3 * 4 + 8 * (3 + 1 * B * (T - 1) + 1)},
                       Case{{2, 2, 1}, 1, 3 * 4 + 8 * (3 + 1 * (B / 2) * (T - 1) + 1)},
                       Case{{1, 1, 2}, 2, 3 * 4 + 8 * (3 + 2 * B * (T - 1) + 1)},
                       Case{{1, 1, 2}, 4, 3 * 4 + 8 * (5 + 2 * 2 * B * (T - 1) + 1)}}) {
    const ClusterPlan a = plan(*big, input(B, T), c.L, c.L.ranks(), 1, c.K);
    const ClusterPlan b = plan(*small, input(B, T), c.L, 1, c.L.ranks(), c.K);
    EXPECT_EQ(a.bytes_per_rank_per_step, c.bytes) << c.L.flags();
    EXPECT_EQ(b.bytes_per_rank_per_step, c.bytes) << c.L.flags();
    EXPECT_EQ(a.mpi_collectives_per_step, 6);
  }
}

TEST(LayoutPlan, CollectivesCostLatencyTimesLog2RanksPlusBytesOverBandwidth) {
  auto arch = load_architecture(testing::golden_dir() / "gpt2");
  ClusterInput ci;
  ci.layout = {8, 1, 1};
  ci.nodes = 8;
  ci.net = network_model(8, 10.0, 8.0);  // 10 µs, 1 GB/s
  const ClusterPlan p = plan_cluster(*arch, input(8, 16), ci, kMachine);
  // Six collectives of 3 rounds each, and the 7 other ranks' bytes received.
  EXPECT_NEAR(p.comm_s, 6 * 3 * 10e-6 + 7.0 * static_cast<double>(p.bytes_per_rank_per_step) / 1e9, 1e-12);
  EXPECT_EQ(std::string(network_model(1).name), "shared memory");
  EXPECT_EQ(std::string(network_model(2).name), "LAN");
  EXPECT_DOUBLE_EQ(network_model(2).latency_s, 50e-6);
  EXPECT_DOUBLE_EQ(network_model(1).latency_s, 2e-6);
  EXPECT_THROW(network_model(2, -1.0), Error);
  EXPECT_THROW(network_model(2, {}, 0.0), Error);
}

TEST(LayoutPlan, StepTimeFallsWithDataParallelNodesUntilLatencyDominates) {
  const PlanInput in = input(64, 256);
  for (const char* name : {"opt-175b", "llama-3-70b"}) {
    auto arch = load_architecture(config_dir(name));
    double last = 1e300;
    for (int M : {1, 2, 8, 64}) {
      const ClusterPlan p = plan(*arch, in, {M, 1, 1}, 1, M);
      EXPECT_LT(p.step_s, last) << name << " on " << M << " nodes";
      EXPECT_LT(p.comm_s, 0.01 * p.step_s) << name;  // compute and the parameter sweep dominate
      EXPECT_NEAR(p.tokens_per_s, 64.0 * 256 / p.step_s, 1e-9 * p.tokens_per_s);
      last = p.step_s;
    }
  }
  // A tiny model: its work is microseconds, the collectives' latency grows with
  // log2(ranks), so 64 nodes are slower than 8.
  auto tiny = load_architecture(testing::golden_dir() / "gpt2");
  const PlanInput short_in = input(64, 16);
  const ClusterPlan p8 = plan(*tiny, short_in, {8, 1, 1}, 1, 8), p64 = plan(*tiny, short_in, {64, 1, 1}, 1, 64);
  EXPECT_GT(p64.comm_s, p8.comm_s);
  EXPECT_GT(p64.step_s, p8.step_s);
  EXPECT_GT(p64.comm_s, p64.compute_s);
}

TEST(LayoutPlan, BadPlacementsAreErrors) {
  auto arch = load_architecture(testing::golden_dir() / "gpt2");
  EXPECT_THROW(plan(*arch, input(8, 16), {4, 1, 1}, 3, 1), Error);      // 3 ranks for a layout of 4
  EXPECT_THROW(plan(*arch, input(6, 16), {4, 1, 1}, 4, 1), Error);      // 6 sequences over 4 slices
  EXPECT_THROW(plan(*arch, input(8, 16), {1, 1, 2}, 2, 1, 3), Error);   // 3 directions over 2 groups
  EXPECT_THROW(plan(*arch, input(8, 16), {1, 3, 1}, 3, 1), Error);      // --pert-parallel 3
}

// The CLI plans a 64-node layout from one process, without weights or mpirun.
TEST(LayoutPlan, DryRunOfALayoutNeedsOnlyConfigJson) {
  const auto r = testing::run_zotune("train --model " + testing::quote(config_dir("llama-3-70b")) +
                                     " --batch-size 64 --max-length 256 --data-parallel 64 --nodes 64 --dry-run --assumed-machine");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string last;
  std::istringstream s(r.output);
  for (std::string line; std::getline(s, line);)
    if (line.rfind("{", 0) == 0) last = line;
  const Json j = Json::parse(last);
  const Json& c = j.at("cluster");
  EXPECT_EQ(c.at("nodes").get<int>(), 64);
  EXPECT_EQ(c.at("ranks_per_node").get<int>(), 1);
  EXPECT_EQ(j.at("batch").get<int>(), 1);  // the rank's slice
  EXPECT_EQ(c.at("node_bytes").at("total").get<uint64_t>(),
            j.at("bytes").at("total").get<uint64_t>() + kMpiRankOverheadBytes);
  EXPECT_EQ(c.at("bytes_per_rank_per_step").get<uint64_t>(), 3u * 4 + 8 * (3 + 2 * 255 + 1));
  EXPECT_EQ(c.at("network").at("model").get<std::string>(), "LAN");
  EXPECT_NE(r.output.find("per node: weights"), std::string::npos) << r.output;
  // A placement that does not hold the layout is an error before any work.
  const auto bad = testing::run_zotune("train --model " + testing::quote(config_dir("llama-3-70b")) +
                                       " --batch-size 64 --data-parallel 64 --nodes 3 --dry-run");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--nodes 3"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace zotune
