// zotune train --model DIR --data TRAIN.jsonl [--eval EVAL.jsonl] --out DIR --steps N --batch-size B
//              --lr --eps --weight-decay --seed --max-length [--eval-every K] [--save-every K] ...
// mpirun -np N zotune train ... --data-parallel N: N ranks, each on its slice of every global batch.
#include "base/error.h"
#include "commands.h"
#include "train/trainer.h"

namespace zotune::cli {

namespace {
struct TrainArgs {
  TrainOptions o;
  std::string model, data, eval, out, resume, perturbation = "gaussian", schedule = "constant", save_dtype, progress = "auto";
  std::string offload = "none", storage_dtype = "fp32", overlap = "on", memory_budget;
  int data_parallel = 1;
};

int run_train(TrainArgs a) {
  if (a.data.empty() && !a.o.dry_run) fail("--data is required");
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
  if (a.o.pert_parallel == 2 && a.o.mezo.one_sided) fail("--pert-parallel 2 needs both passes; --one-sided has one");
  Comm& comm = layout_comm(a.data_parallel, a.o.threads, a.o.pert_parallel);
  return run_training(a.o, comm);
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
  c->add_option("--seed", a->o.seed, "run seed: data order and every perturbation")->capture_default_str();
  c->add_option("--max-length", a->o.max_length, "tokens per sequence (prompts are cut from the left)")->capture_default_str();
  c->add_option("--eval-every", a->o.eval_every, "evaluate every K steps (0: before and after training only)");
  c->add_option("--save-every", a->o.save_every, "checkpoint every K steps (0: only at the end)");
  c->add_option("--keep-checkpoints", a->o.keep_checkpoints, "checkpoint directories to keep")->capture_default_str();
  c->add_option("--max-eval-examples", a->o.max_eval_examples, "evaluate on at most this many examples (0: all)");
  c->add_option("--perturbation", a->perturbation, "z distribution: gaussian, rademacher or ones")->capture_default_str();
  c->add_flag("--one-sided", a->o.mezo.one_sided, "g = (L(θ+εz) - L(θ)) / ε instead of the two-sided estimate");
  c->add_option("--schedule", a->schedule, "learning-rate schedule: constant or linear (decay to 0)")->capture_default_str();
  c->add_option("--warmup-steps", a->o.mezo.warmup_steps, "linear warm-up steps")->capture_default_str();
  c->add_option("--task", a->o.task, "MeZO task whose raw records the data files hold (sst2, rte, cb, boolq, ...)");
  c->add_option("--save-dtype", a->save_dtype, "dtype of the saved model (default: the input's)");
  c->add_option("--resume", a->resume, "continue an earlier run's output or checkpoint directory");
  c->add_option("--threads", a->o.threads, "compute threads (default: all cores, shared by the ranks on a node)");
  c->add_option("--data-parallel", a->data_parallel,
                "ranks that split each global batch (run as mpirun -np N zotune train ... --data-parallel N)")
      ->capture_default_str();
  c->add_option("--pert-parallel", a->o.pert_parallel,
                "2: a pair of ranks runs the +εz and the -εz pass of each step (ranks = data-parallel × 2)")
      ->capture_default_str();
  add_store_options(*c, a->offload, a->storage_dtype, a->o.store.resident_blocks, a->overlap);
  c->add_option("--memory-budget", a->memory_budget, "pick the tier and resident blocks to fit SIZE (e.g. 4G, 512M)");
  c->add_flag("--dry-run", a->o.dry_run, "print the planned peak memory of each tier and the time per step; train nothing");
  c->add_option("--progress", a->progress, "auto (bar on a terminal), bar or log")->capture_default_str();
  c->callback([a] { set_action_with_status([a] { return run_train(*a); }); });
}

}  // namespace zotune::cli
