// zotune bench --model DIR --batch-size B --seq-len T --steps N [--threads K]
//              [tier options of train, --memory-budget SIZE]
// mpirun -np N zotune bench ... --data-parallel D [--pert-parallel 2]
// [--directions K --direction-groups G]: each rank steps on its share of the
// same global batch (dist/layout.h); rank 0 prints the layout, tokens_per_sec of
// the global batch, bytes_sent_per_rank_per_step (what each rank put into the
// collectives of a step: Comm::counters), peak_rss_mb_ranks (every rank's peak)
// and peak_rss_mb_nodes (the sum over the ranks of each host, in order of
// first rank), with the cluster plan's figures (train/layout_plan.h) beside them.
// Runs N ZO steps on random tokens and prints one JSON line (a contract):
// sec_per_step_median, tokens_per_sec, forward_sec_median, peak_rss_mb,
// param_bytes_read_per_step, param_bytes_written_per_step, rng_draws_per_param_per_step,
// and for the tiers compute_sec_per_step, io_sec_per_step, bytes_read/written_per_step,
// disk_mb_per_s; planned_peak_rss_mb and planned_sec_per_step are the memory
// plan's predictions (--dry-run) for the same run, so plan and measurement sit
// side by side. gemm names the GEMM kernels in use; forward_gflops is the
// forward's rate (model/forward.h forward_flops), shown as a fraction of the
// FMA peak (kernels/fma_peak.h) and of the probe's sgemm rate.
// --data FILE [--task T] times the first batch of a real dataset (e.g. the
// built-in sentiment task: prompts with candidates) instead of random tokens;
// --seq-len is then its max length and the model directory's tokenizer is used.
// Forward, step and FMA-peak timings are interleaved (F S P F S P ...) so
// machine noise hits all of them.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "base/philox.h"
#include "base/threads.h"
#include "base/timer.h"
#include "commands.h"
#include "io/safetensors.h"
#include "kernels/compute_env.h"
#include "kernels/fma_peak.h"
#include "kernels/kernels.h"
#include "model/architecture.h"
#include "train/run_lock.h"
#include "model/forward.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "tokenizer/tokenizer.h"
#include <unistd.h>

#include <filesystem>

#include "store/param_store.h"
#include "store/store_factory.h"
#include "train/engine.h"
#include "train/layout_plan.h"
#include "train/planner.h"

namespace zotune::cli {

namespace {
struct BenchArgs {
  std::string model;
  int64_t batch = 4, seq_len = 128, steps = 5;
  int threads = 0, directions = 1;
  RankLayout layout;
  uint64_t seed = 0;
  std::string perturbation = "gaussian";
  std::string data, task;
  std::string offload = "none", storage_dtype = "fp32", overlap = "on", work_dir, memory_budget;
  StoreOptions store;
  NetworkArgs net;
};

// Every rank's host name, in rank order (each rank broadcasts its own in turn).
std::vector<std::string> host_names(Comm& comm) {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  std::vector<std::string> hosts;
  for (int r = 0; r < comm.world(); ++r) {
    std::vector<uint8_t> blob;
    if (r == comm.rank()) blob.assign(name, name + std::strlen(name));
    comm.broadcast(blob, r);
    hosts.emplace_back(blob.begin(), blob.end());
  }
  return hosts;
}

// The nodes of a job: each rank's node index (in order of first rank) and the
// number of nodes.
std::vector<int> node_of_rank(const std::vector<std::string>& hosts, int& nodes) {
  std::vector<std::string> seen;
  std::vector<int> node;
  for (const auto& h : hosts) {
    auto it = std::find(seen.begin(), seen.end(), h);
    if (it == seen.end()) it = seen.insert(seen.end(), h);
    node.push_back(static_cast<int>(it - seen.begin()));
  }
  nodes = static_cast<int>(seen.size());
  return node;
}

// Rank `rank`'s slice (sequences [rank*B/world, ...)) of a global batch of B
// random sequences: the same tokens whatever the number of ranks.
Batch random_lm_batch(int64_t B, int64_t T, int64_t V, uint64_t seed, int rank, int world) {
  const int64_t b = B / world, first = b * rank;
  std::vector<int32_t> ids(static_cast<std::size_t>(b * T));
  for (int64_t i = 0; i < b * T; ++i) {
    const int64_t g = first * T + i;
    auto r = Philox4x32::block({static_cast<uint32_t>(g), 0, 0, 0xBE4Cu}, {static_cast<uint32_t>(seed), 0});
    ids[static_cast<std::size_t>(i)] = static_cast<int32_t>(r[0] % static_cast<uint32_t>(V));
  }
  return language_model_batch(std::move(ids), b, T);
}

// The first training batch of a dataset, as `train` would draw it with this seed.
Batch dataset_batch(const BenchArgs& a, const Architecture& arch, const Comm& comm) {
  const Tokenizer tok = Tokenizer::load(a.model);
  DatasetOptions d;
  d.max_length = a.seq_len;
  d.task = a.task;
  d.vocab_size = arch.config().vocab_size;
  const Dataset ds = Dataset::load_jsonl(a.data, d, &tok);
  LoaderOptions lo;
  lo.batch_size = a.batch / a.layout.data;
  lo.seed = a.seed;
  lo.rank = a.layout.slice(comm.rank());
  lo.world = a.layout.data;
  DataLoader loader(ds, lo);
  return loader.batch_for_step(0);
}

void run_bench(BenchArgs a) {
  Comm& comm = layout_comm(a.layout, a.threads);
  set_compute_threads(a.threads);
  check(a.batch > 0 && a.seq_len > 1 && a.steps > 0, "--batch-size and --steps must be > 0, --seq-len > 1");
  check(a.batch % a.layout.data == 0, "--batch-size ", a.batch, " does not split over ", a.layout.data,
        " data-parallel ranks");
  auto arch = load_architecture(a.model);
  Checkpoint ckpt(a.model);
  StoreOptions so = a.store;
  apply_store_options(a.offload, a.storage_dtype, a.overlap, so);
  // The working copy goes to a directory of the bench's own (a temp dir, or a
  // --work-dir it created or marked: train/run_lock.h) and is removed after;
  // --work-dir is checked before anything is measured.
  std::filesystem::path tmp_work, work_files;
  if (!a.work_dir.empty()) {
    if (claim_bench_work_dir(a.work_dir, a.model)) tmp_work = a.work_dir;
    else work_files = a.work_dir;
  }
  // The plan's time estimate from this machine's constants (probed in ~0.5 s,
  // the disk where the working copy goes included), as --dry-run does.
  std::filesystem::path probe_dir = a.work_dir.empty() ? std::filesystem::temp_directory_path()
                                                        : std::filesystem::path(a.work_dir).parent_path();
  if (probe_dir.empty()) probe_dir = ".";
  comm.barrier();  // the ranks of a node probe it together
  const MachineConstants mc = probe_machine(probe_dir);
  // peak_rss_mb is the run's: the probe's buffers (up to 128 MB) are gone.
  if (!reset_peak_rss()) std::fprintf(stderr, "zotune bench: cannot reset the peak RSS; it includes the machine probe\n");
  const uint64_t budget = a.memory_budget.empty() ? 0 : parse_size(a.memory_budget, "--memory-budget");
  // The plan of this rank's slice, and of the layout: R ranks on each of M
  // hosts. The ranks probed together, each with its threads, so one node does
  // R times what this rank measured.
  // (plan_run writes the tier --memory-budget chooses for the slice into `so`.)
  plan_run(*arch, so, a.batch / a.layout.data, a.seq_len, budget, mc, "zotune bench", true,
           a.directions / std::max(a.layout.groups, 1));
  resolve_node_sharing(*arch, so, comm);  // after the tier is final
  const std::vector<std::string> hosts = host_names(comm);
  int nodes = 1;
  const std::vector<int> node = node_of_rank(hosts, nodes);
  ClusterInput ci;
  ci.layout = a.layout;
  ci.directions = a.directions;
  ci.nodes = comm.world() % nodes == 0 ? nodes : 1;  // an uneven placement is planned as one node
  ci.ranks_per_node = comm.world() / ci.nodes;
  ci.weights = so.share_node_weights ? NodeWeights::Shared : NodeWeights::PerRank;
  ci.net = network_of(a.net, ci.nodes);
  ci.train = false;
  MachineConstants node_mc = mc;
  node_mc.gemm_gflops *= ci.ranks_per_node;
  node_mc.zo_params_per_s *= ci.ranks_per_node;
  const ClusterPlan cplan = plan_cluster(*arch, plan_input(so, a.batch, a.seq_len, compute_threads()), ci, node_mc);
  if (so.offload == Offload::Disk && !a.work_dir.empty()) so.work_dir = a.work_dir;
  if (so.offload == Offload::Disk && a.work_dir.empty()) {
    tmp_work = std::filesystem::temp_directory_path() / ("zotune-bench-" + std::to_string(::getpid()));
    so.work_dir = tmp_work;
  }
  struct Cleanup {
    std::filesystem::path dir, contents;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
      if (!contents.empty())
        for (const auto& e : std::filesystem::directory_iterator(contents, ec)) std::filesystem::remove_all(e.path(), ec);
    }
  } cleanup{tmp_work, work_files};
  std::unique_ptr<ParamStore> store_ptr = make_store(*arch, ckpt, so, &comm);
  ParamStore& store = *store_ptr;
  MezoOptions opt;
  opt.dist = parse_perturbation(a.perturbation);
  opt.lr = 1e-7f;
  opt.directions = a.directions;
  ZoEngine engine(*arch, store, opt, a.seed, comm, a.layout);
  Batch batch = a.data.empty() ? random_lm_batch(a.batch, a.seq_len, arch->config().vocab_size, a.seed, a.layout.slice(comm.rank()),
                                                 a.layout.data)
                               : dataset_batch(a, *arch, comm);

  // Warm-up: first touch of every buffer (page faults) is not what we measure.
  engine.step(0, a.steps + 1, batch);
  engine.forward_unflushed(batch);
  std::vector<double> fwd, stp, fma;
  StoreCounters c;  // the steps' work only (the interleaved forwards stream blocks too)
  auto add = [&](const StoreCounters& x) {
    c.param_bytes_read += x.param_bytes_read;
    c.param_bytes_written += x.param_bytes_written;
    c.rng_draws += x.rng_draws;
    c.rounding_draws += x.rounding_draws;
    c.io_read_seconds += x.io_read_seconds;
    c.io_write_seconds += x.io_write_seconds;
    c.io_wait_seconds += x.io_wait_seconds;
  };
  comm.reset_counters();
  for (int64_t i = 0; i < a.steps; ++i) {
    Stopwatch f;
    engine.forward_unflushed(batch);
    fwd.push_back(f.seconds());
    store.sync();
    store.counters().reset();
    Stopwatch s;
    engine.step(i + 1, a.steps + 1, batch);  // applies step i's deferred update, perturbs step i+1
    store.sync();                            // a step ends when its write-backs are on disk
    stp.push_back(s.seconds());
    add(store.counters());
    fma.push_back(kernels::measure_fma_peak(compute_threads()).gflops_n);
  }
  const CommCounters sent = comm.counters();
  // Figures of every rank (after the count: these collectives are not a step's).
  const double n_steps = static_cast<double>(a.steps);
  const double mine[3] = {static_cast<double>(sent.bytes_sent) / n_steps, peak_rss_mb(),
                          static_cast<double>(batch.num_tokens())};
  const std::vector<double> all = comm.allgather(mine);
  std::vector<double> bytes_ranks, rss_ranks, rss_nodes(static_cast<std::size_t>(nodes), 0.0);
  double global_tokens = 0;  // the global batch: every data slice once
  for (int r = 0; r < comm.world(); ++r) {
    const double* x = all.data() + 3 * r;
    bytes_ranks.push_back(x[0]);
    rss_ranks.push_back(x[1]);
    rss_nodes[static_cast<std::size_t>(node[static_cast<std::size_t>(r)])] += x[1];
    if (a.layout.group(r) == 0 && a.layout.half(r) == 0) global_tokens += x[2];
  }
  const double step_med = median(stp), fwd_med = median(fwd);
  const double n = static_cast<double>(a.steps), P = static_cast<double>(store.total_params());
  const double fwd_gflops = forward_flops(*arch, batch.B, batch.T, static_cast<int64_t>(batch.rows.size())) / fwd_med / 1e9, fma_med = median(fma);
  // Streaming tiers: the I/O thread's own time gives the bandwidth of this run;
  // io_sec_per_step is the time to move one step's bytes at that bandwidth.
  const double io_busy = c.io_read_seconds + c.io_write_seconds;
  const double io_bytes = static_cast<double>(c.param_bytes_read + c.param_bytes_written);
  const bool streams = so.offload == Offload::Disk;
  const double disk_mb_s = streams && io_busy > 0 ? io_bytes / io_busy / 1e6 : 0.0;
  const double io_sec = streams ? io_busy / n : 0.0;
  const double compute_sec = step_med - (streams ? c.io_wait_seconds / n : 0.0);
  Json out = {{"model", a.model},
              {"batch_size", a.batch},
              {"seq_len", a.seq_len},
              {"steps", a.steps},
              {"threads", compute_threads()},
              {"data_parallel", a.layout.data},
              {"pert_parallel", a.layout.pert},
              {"direction_groups", a.layout.groups},
              {"directions", a.directions},
              {"ranks", comm.world()},
              {"isa", kernels::isa_name()},
              {"gemm", kernels::compute_info().gemm},
              {"forward_gflops", fwd_gflops},
              {"fma_peak_gflops", fma_med},
              {"fma_peak_gflops_1thread", mc.fma_peak_gflops_1thread},
              {"sgemm_peak_gflops", mc.gemm_gflops},
              {"forward_over_fma_peak", fwd_gflops / fma_med},
              {"forward_over_sgemm_peak", fwd_gflops / mc.gemm_gflops},
              {"perturbation", a.perturbation},
              {"sec_per_step_median", step_med},
              {"tokens_per_sec", global_tokens / step_med},
              {"bytes_sent_per_rank_per_step", static_cast<double>(sent.bytes_sent) / n_steps},
              {"collectives_per_step", static_cast<double>(sent.collectives) / n_steps},
              {"bytes_sent_per_step_ranks", bytes_ranks},
              {"nodes", nodes},
              {"ranks_per_node", ci.ranks_per_node},
              {"peak_rss_mb_ranks", rss_ranks},
              {"peak_rss_mb_nodes", rss_nodes},
              {"planned_bytes_per_rank_per_step", cplan.bytes_per_rank_per_step},
              {"planned_node_mb", static_cast<double>(cplan.node_total()) / 1048576.0},
              {"planned_sec_per_step_collectives", cplan.comm_s},
              {"forward_sec_median", fwd_med},
              {"step_over_forward", step_med / fwd_med},
              {"peak_rss_mb", peak_rss_mb()},
              {"param_bytes_read_per_step", static_cast<double>(c.param_bytes_read) / n},
              {"param_bytes_written_per_step", static_cast<double>(c.param_bytes_written) / n},
              {"rng_draws_per_param_per_step", static_cast<double>(c.rng_draws) / n / P},
              {"rounding_draws_per_param_per_step", static_cast<double>(c.rounding_draws) / n / P},
              {"parameters", store.total_params()},
              {"offload", offload_name(so.offload)},
              {"planned_peak_rss_mb", static_cast<double>(cplan.rank_total()) / 1048576.0},
              {"plan_over_measured", static_cast<double>(cplan.rank_total()) / 1048576.0 / peak_rss_mb()},
              {"memory_budget_mb", static_cast<double>(budget) / 1048576.0},
              {"planned_sec_per_step", cplan.step_s},
              {"storage_dtype", std::string(dtype_name(so.storage_dtype))},
              {"resident_blocks", so.resident_blocks},
              {"overlap", so.overlap},
              {"share_node_weights", so.share_node_weights},
              {"compute_sec_per_step", compute_sec},
              {"io_sec_per_step", io_sec},
              {"io_wait_sec_per_step", streams ? c.io_wait_seconds / n : 0.0},
              {"bytes_read_per_step", static_cast<double>(c.param_bytes_read) / n},
              {"bytes_written_per_step", static_cast<double>(c.param_bytes_written) / n},
              {"disk_mb_per_s", disk_mb_s},
              {"step_over_max_compute_io", step_med / std::max(compute_sec, io_sec)},
              {"param_bytes", store.total_params() * 4},
              {"sec_per_step_all", stp},
              {"forward_sec_all", fwd}};
  // Every rank timed its own slice; rank 0 (whose steps wait for the others
  // in the reduction) speaks for the run.
  if (comm.rank() == 0) std::printf("%s\n", out.dump().c_str());
}
}  // namespace

void register_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Time ZO steps against a plain forward on random tokens (prints JSON)");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_option("--batch-size", args->batch, "sequences per step")->capture_default_str();
  cmd->add_option("--seq-len", args->seq_len, "tokens per sequence")->capture_default_str();
  cmd->add_option("--steps", args->steps, "timed ZO steps")->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads per rank (default: the node's cores over its ranks)");
  cmd->add_option("--data", args->data, "time a batch of this JSONL training file (needs the model's tokenizer)");
  cmd->add_option("--task", args->task, "--data holds this MeZO task's raw records");
  cmd->add_option("--directions", args->directions, "perturbation directions per step")->capture_default_str();
  add_layout_options(*cmd, args->layout);
  add_network_options(*cmd, args->net);
  cmd->add_option("--seed", args->seed, "seed of the random tokens and perturbations")->capture_default_str();
  cmd->add_option("--perturbation", args->perturbation, "gaussian, rademacher or ones")->capture_default_str();
  add_store_options(*cmd, args->offload, args->storage_dtype, args->store, args->overlap);
  add_share_option(*cmd, args->store.node_sharing);
  cmd->add_option("--work-dir", args->work_dir, "disk tier: where the working copy goes (default: a temp dir)");
  cmd->add_option("--memory-budget", args->memory_budget,
                  "pick the tier and resident blocks to fit SIZE (e.g. 4G, 512M), as train does");
  cmd->callback([args] { set_action([args] { run_bench(*args); }); });
}

}  // namespace zotune::cli
