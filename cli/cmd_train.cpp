// zotune train --model DIR --data TRAIN.jsonl [--eval EVAL.jsonl] --out DIR --steps N --batch-size B
//              --lr --eps --weight-decay --seed --max-length [--eval-every K] [--save-every K] ...
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

// mpirun -np N zotune train ... --data-parallel N: N ranks, each on its slice of every global batch.
#include "base/error.h"
#include "commands.h"
#include "data/eval_protocol.h"
#include "data/task_files.h"
#include "io/json_file.h"
#include "train/evaluate.h"
#include "base/threads.h"
#include "model/architecture.h"
#include "option_checks.h"
#include "train/layout_plan.h"
#include "train/planner.h"
#include "train/trainer.h"

namespace zotune::cli {

namespace {
struct TrainArgs {
  TrainOptions o;
  std::string model, data, eval, out, resume, perturbation = "gaussian", schedule = "constant", save_dtype, progress = "auto";
  std::string offload = "none", storage_dtype = "fp32", overlap = "on", memory_budget;
  int ranks_per_node = 0, nodes = 0;  // --dry-run of a layout; 0: from the layout
  bool assumed_machine = false;       // --dry-run with the assumed constants, not the probe
  NetworkArgs net;
};

// --dry-run: the memory plan of one rank and, for a layout of several ranks or
// directions, the plan per node and the step time over the layout
// (train/layout_plan.h). Needs only config.json and no mpirun: any layout can
// be planned from one process.
int dry_run(const TrainArgs& a) {
  const TrainOptions& o = a.o;
  const RankLayout& L = o.layout;
  const int ranks = L.ranks();
  int R = a.ranks_per_node, M = a.nodes;
  if (R <= 0 && M <= 0) M = 1;
  if (R <= 0) R = ranks % M == 0 ? ranks / M : 0;
  if (M <= 0) M = ranks % R == 0 ? ranks / R : 0;
  if (R <= 0 || M <= 0 || R * M != ranks)
    fail("--nodes ", a.nodes, " and --ranks-per-node ", a.ranks_per_node, " do not place the layout's ", ranks,
         " ranks (", L.flags(), ")");
  const bool cluster = ranks > 1 || o.mezo.directions > 1;
  check(o.batch_size % L.data == 0, "--batch-size ", o.batch_size, " does not split over ", L.data,
        " data-parallel ranks");
  // The probe measures one node: the threads all its ranks use together.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int rank_threads = o.threads > 0 ? o.threads : std::max(1, cores / R);
  set_compute_threads(o.threads > 0 ? o.threads * R : 0);  // 0: every core
  auto arch = load_architecture(o.model);
  const bool disk = o.store.offload == Offload::Disk || o.memory_budget > 0;
  const MachineConstants mc = a.assumed_machine ? assumed_machine_constants()
                              : probe_machine(disk ? existing_directory_of(o.out) : std::filesystem::path{});
  StoreOptions so = o.store;
  so.share_node_weights = planned_node_sharing(so, R);
  set_compute_threads(rank_threads);
  // The tier --memory-budget picks is the one a rank's slice fits in.
  MemoryPlan rank = plan_run(*arch, so, o.batch_size / L.data, o.max_length, o.memory_budget, mc,
                             "zotune train", false, o.mezo.directions / std::max(L.groups, 1));
  so.share_node_weights = planned_node_sharing(so, R);  // the tier may now be the disk
  rank.input.share_node_weights = so.share_node_weights;
  std::printf("%s", plan_table(rank).c_str());
  Json j = plan_json(rank);
  if (cluster) {
    ClusterInput ci;
    ci.layout = L;
    ci.directions = o.mezo.directions;
    ci.ranks_per_node = R;
    ci.nodes = M;
    ci.weights = so.share_node_weights ? NodeWeights::Shared : NodeWeights::PerRank;
    ci.net = network_of(a.net, M);
    const ClusterPlan cp = plan_cluster(*arch, plan_input(so, o.batch_size, o.max_length, rank_threads), ci, mc);
    std::printf("%s", cluster_table(cp).c_str());
    j["cluster"] = cluster_json(cp);
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

// After a --data-dir run: the test-set metric of the output model (the best
// dev checkpoint with --select-best), appended to metrics.jsonl with the
// sampled ids and printed as one JSON line.
void test_after_training(const TrainOptions& o) {
  const int64_t num_dev = o.num_dev >= 0 ? o.num_dev : default_num_dev(o.task);
  const MezoTaskData m = mezo_task_data(o.task, o.data_dir, o.num_train, num_dev, o.num_test, static_cast<uint32_t>(o.seed));
  const bool best = o.select_best && std::filesystem::exists(o.out / "best" / "config.json");
  int64_t best_step = -1;
  {
    std::ifstream in(o.out / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && j.value("best", false)) best_step = j.value("step", int64_t{-1});
    }
  }
  const EvalTotals t = evaluate_model(best ? o.out / "best" : o.out, m.test, EvalSettings{0, 50});
  nlohmann::ordered_json rec = {{"type", "test"}, {"step", o.steps}, {"task", canonical_task_name(o.task)},
              {"model", best ? "best" : "final"}, {"metric", t.metric()}, {"value", t.value()}, {"n", t.n}};
  if (t.generation) rec["em"] = t.mean_em();
  if (best) rec["best_step"] = best_step;
  rec["seed"] = o.seed;
  rec["train_ids"] = m.train_ids;
  rec["dev_ids"] = m.dev_ids;
  rec["test_ids"] = m.test_ids;
  std::FILE* f = std::fopen((o.out / "metrics.jsonl").c_str(), "ab");
  if (!f) fail("cannot open ", (o.out / "metrics.jsonl").string());
  const std::string text = rec.dump() + "\n";
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) fail("cannot write ", (o.out / "metrics.jsonl").string());
  nlohmann::ordered_json shown = rec;
  shown.erase("train_ids");
  shown.erase("dev_ids");
  std::printf("%s\n", shown.dump().c_str());
}

int run_train(TrainArgs a) {
  if (a.data.empty() && a.o.data_dir.empty() && !a.o.dry_run) fail("--data (or --data-dir with --task) is required");
  if (!a.data.empty() && !a.o.data_dir.empty()) fail("give one of --data and --data-dir");
  if (a.o.select_best && a.o.data_dir.empty() && a.eval.empty()) fail("--select-best needs a dev set: --eval or --data-dir");
  if (a.out.empty() && !a.o.dry_run) fail("--out is required");
  a.o.model = a.model;
  a.o.data = a.data;
  a.o.eval = a.eval;
  a.o.out = a.out;
  a.o.resume = a.resume;
  a.o.mezo.dist = parse_perturbation(a.perturbation);
  if (a.schedule == "constant") a.o.mezo.schedule = ScheduleKind::Constant;
  else if (a.schedule == "linear") a.o.mezo.schedule = ScheduleKind::Linear;
  else fail("--schedule: unknown value '", a.schedule, "' (constant, linear)");
  if (!a.save_dtype.empty()) {
    auto d = dtype_from_cli(a.save_dtype);
    if (!d || !is_float_storage(*d)) fail("--save-dtype: unsupported value '", a.save_dtype, "' (fp32, bf16, fp16)");
    a.o.save_dtype = *d;
  }
  if (a.progress == "bar") a.o.progress = 1;
  else if (a.progress == "log") a.o.progress = 0;
  else if (a.progress == "auto") a.o.progress = -1;
  else fail("--progress: unknown value '", a.progress, "' (auto, bar, log)");
  apply_store_options(a.offload, a.storage_dtype, a.overlap, a.o.store);
  if (!a.memory_budget.empty()) a.o.memory_budget = parse_size(a.memory_budget, "--memory-budget");
  if (a.o.layout.pert == 2 && a.o.mezo.one_sided) fail("--pert-parallel 2 needs both passes; --one-sided has one");
  if (a.o.mezo.directions < 1) fail("--directions must be >= 1, not ", a.o.mezo.directions);
  if (a.o.mezo.directions % a.o.layout.groups != 0)
    fail("--directions ", a.o.mezo.directions, " does not split over --direction-groups ", a.o.layout.groups);
  if (a.o.dry_run) {
    // Planned from one process: rank 0 of a launched job prints, the others stay quiet.
    if (launched_by_mpi() && process_comm().rank() != 0) return 0;
    return dry_run(a);
  }
  Comm& comm = layout_comm(a.o.layout, a.o.threads);
  const int status = run_training(a.o, comm);
  if (status == 0 && !a.o.data_dir.empty() && !a.o.dry_run && comm.rank() == 0) test_after_training(a.o);
  return status;
}
}  // namespace

void register_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand("train", "Fine-tune all parameters with MeZO-SGD (ZO2 dual forward, deferred update)");
  c->add_option("--model", a->model, "Hugging Face model directory (never modified)")->required();
  c->add_option("--data", a->data, "training JSONL: {text} | {prompt, completion} | {prompt, candidates, label}");
  c->add_option("--eval", a->eval, "evaluation JSONL (same shapes)");
  c->add_option("--out", a->out, "output directory (model, metrics, plots, checkpoints)");
  c->add_option("--steps", a->o.steps, "total ZO steps")->capture_default_str();
  c->add_option("--batch-size", a->o.batch_size, "examples per step")->capture_default_str();
  c->add_option("--eval-batch-size", a->o.eval_batch_size, "examples per eval batch (default: --batch-size)");
  c->add_option("--lr", a->o.mezo.lr, "learning rate")->capture_default_str();
  c->add_option("--eps", a->o.mezo.eps, "perturbation scale epsilon")->capture_default_str();
  c->add_option("--weight-decay", a->o.mezo.weight_decay, "weight decay (not on biases and norm weights)")->capture_default_str();
  c->add_option("--seed", a->o.seed, "run seed: data order and every perturbation")->capture_default_str()->check(kUint64Text);
  auto* max_len = c->add_option("--max-length", a->o.max_length, "tokens per sequence (prompts are cut from the left; "
                                 "default: 256 or the model's position limit if smaller)")->capture_default_str();
  c->add_option("--eval-every", a->o.eval_every, "evaluate every K steps (0: before and after training only)");
  c->add_option("--save-every", a->o.save_every, "checkpoint every K steps (0: only at the end)");
  c->add_option("--keep-checkpoints", a->o.keep_checkpoints, "checkpoint directories to keep")->capture_default_str();
  c->add_option("--check-every", a->o.check_every,
                "several ranks: compare a checksum of every rank's weights every K steps (0: never)")
      ->capture_default_str()->check(kNonNegative);
  c->add_option("--max-eval-examples", a->o.max_eval_examples, "evaluate on at most this many examples (0: all)");
  c->add_option("--perturbation", a->perturbation, "z distribution: gaussian, rademacher or ones")->capture_default_str();
  c->add_flag("--one-sided", a->o.mezo.one_sided, "g = (L(θ+εz) - L(θ)) / ε instead of the two-sided estimate");
  c->add_option("--schedule", a->schedule, "learning-rate schedule: constant or linear (decay to 0)")->capture_default_str();
  c->add_option("--warmup-steps", a->o.mezo.warmup_steps, "linear warm-up steps")->capture_default_str();
  c->add_option("--task", a->o.task, "MeZO task whose raw records the data files hold (sst2, rte, cb, boolq, ...)");
  c->add_option("--data-dir", a->o.data_dir, "the task's files (docs/evaluation.md): MeZO's sampled train/dev/test sets");
  c->add_option("--num-train", a->o.num_train, "--data-dir: training examples sampled")->capture_default_str();
  c->add_option("--num-dev", a->o.num_dev, "--data-dir: dev examples (default 500; CB, COPA 100)");
  c->add_option("--num-test", a->o.num_test, "--data-dir: test examples from the validation split")->capture_default_str();
  c->add_flag("--select-best", a->o.select_best, "the output model is the best dev evaluation's (also in <out>/best; the last step's in <out>/last)");
  c->add_option("--save-dtype", a->save_dtype, "dtype of the saved model (default: the input's)");
  c->add_option("--resume", a->resume, "continue an earlier run's output or checkpoint directory");
  c->add_option("--threads", a->o.threads, "compute threads (default: all cores, shared by the ranks on a node)")
      ->check(kNonNegative);
  c->add_option("--directions", a->o.mezo.directions,
                "K independent perturbations per step, update with the mean of g_k z_k (1: MeZO-SGD)")
      ->capture_default_str();
  add_layout_options(*c, a->o.layout);
  c->add_option("--ranks-per-node", a->ranks_per_node, "--dry-run: ranks on each node (default: the layout's ranks over --nodes)");
  c->add_option("--nodes", a->nodes, "--dry-run: nodes the ranks are spread over (default 1)");
  add_network_options(*c, a->net);
  c->add_flag("--assumed-machine", a->assumed_machine,
              "--dry-run: time with the assumed machine constants instead of probing this one (reproducible plans)");
  add_store_options(*c, a->offload, a->storage_dtype, a->o.store, a->overlap);
  add_share_option(*c, a->o.store.node_sharing);
  c->add_option("--memory-budget", a->memory_budget, "pick the tier and resident blocks to fit SIZE (e.g. 4G, 512M)");
  c->add_flag("--dry-run", a->o.dry_run, "print the planned peak memory and time per step (per rank and per node for a layout); train nothing");
  c->add_option("--progress", a->progress, "auto (bar on a terminal), bar or log")->capture_default_str();
  c->callback([a, max_len] {
    a->o.max_length_given = max_len->count() > 0;
    set_action_with_status([a] { return run_train(*a); });
  });
}

}  // namespace zotune::cli
