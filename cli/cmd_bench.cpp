// zotune bench --model DIR --batch-size B --seq-len T --steps N [--threads K]
//              [tier options of train, --memory-budget SIZE]
// mpirun -np D zotune bench ... --data-parallel D: each rank steps on its slice
// of the same global batch; rank 0 prints (data_parallel, global tokens_per_sec).
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
#include <cstdio>

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
#include "model/forward.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "tokenizer/tokenizer.h"
#include <unistd.h>

#include <filesystem>

#include "store/param_store.h"
#include "store/store_factory.h"
#include "train/engine.h"
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
};

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
  // The plan's time estimate from this machine's constants (probed in ~0.5 s,
  // the disk where the working copy goes included), as --dry-run does.
  std::filesystem::path probe_dir = a.work_dir.empty() ? std::filesystem::temp_directory_path()
                                                        : std::filesystem::path(a.work_dir).parent_path();
  if (probe_dir.empty()) probe_dir = ".";
  const MachineConstants mc = probe_machine(probe_dir);
  // peak_rss_mb is the run's: the probe's buffers (up to 128 MB) are gone.
  if (!reset_peak_rss()) std::fprintf(stderr, "zotune bench: cannot reset the peak RSS; it includes the machine probe\n");
  const uint64_t budget = a.memory_budget.empty() ? 0 : parse_size(a.memory_budget, "--memory-budget");
  const MemoryPlan plan = plan_run(*arch, so, a.batch, a.seq_len, budget, mc, "zotune bench", true);
  std::filesystem::path tmp_work;
  if (so.offload == Offload::Disk) {
    if (a.work_dir.empty()) {
      tmp_work = std::filesystem::temp_directory_path() / ("zotune-bench-" + std::to_string(::getpid()));
      so.work_dir = tmp_work;
    } else {
      so.work_dir = a.work_dir;
    }
  }
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() {
      std::error_code ec;
      if (!p.empty()) std::filesystem::remove_all(p, ec);
    }
  } cleanup{tmp_work};
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
              {"tokens_per_sec", static_cast<double>(batch.num_tokens()) / step_med},
              {"forward_sec_median", fwd_med},
              {"step_over_forward", step_med / fwd_med},
              {"peak_rss_mb", peak_rss_mb()},
              {"param_bytes_read_per_step", static_cast<double>(c.param_bytes_read) / n},
              {"param_bytes_written_per_step", static_cast<double>(c.param_bytes_written) / n},
              {"rng_draws_per_param_per_step", static_cast<double>(c.rng_draws) / n / P},
              {"rounding_draws_per_param_per_step", static_cast<double>(c.rounding_draws) / n / P},
              {"parameters", store.total_params()},
              {"offload", offload_name(so.offload)},
              {"planned_peak_rss_mb", static_cast<double>(plan.bytes.total()) / 1048576.0},
              {"plan_over_measured", static_cast<double>(plan.bytes.total()) / 1048576.0 / peak_rss_mb()},
              {"memory_budget_mb", static_cast<double>(budget) / 1048576.0},
              {"planned_sec_per_step", plan.step_s},
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
  cmd->add_option("--seed", args->seed, "seed of the random tokens and perturbations")->capture_default_str();
  cmd->add_option("--perturbation", args->perturbation, "gaussian, rademacher or ones")->capture_default_str();
  add_store_options(*cmd, args->offload, args->storage_dtype, args->store.resident_blocks, args->overlap);
  add_share_option(*cmd, args->store.share_node_weights);
  cmd->add_option("--work-dir", args->work_dir, "disk tier: where the working copy goes (default: a temp dir)");
  cmd->add_option("--memory-budget", args->memory_budget,
                  "pick the tier and resident blocks to fit SIZE (e.g. 4G, 512M), as train does");
  cmd->callback([args] { set_action([args] { run_bench(*args); }); });
}

}  // namespace zotune::cli
