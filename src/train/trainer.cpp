#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/error.h"
#include "base/fs.h"
#include "base/paths.h"
#include "base/signals.h"
#include "base/threads.h"
#include "data/eval_protocol.h"
#include "data/task_files.h"
#include "io/model_identity.h"
#include "store/store_factory.h"
#include "train/options_check.h"
#include "train/planner.h"
#include "train/replica_check.h"
#include "train/trainer_impl.h"
#include "train/update_log.h"
#include "zo/replay.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

// The run's identity: resuming with other values would not reproduce it.
Json run_identity(const TrainOptions& o) {
  Json id = {{"run_seed", o.seed},
          {"lr", static_cast<double>(o.mezo.lr)},
          {"eps", static_cast<double>(o.mezo.eps)},
          {"weight_decay", static_cast<double>(o.mezo.weight_decay)},
          {"perturbation", zdist_name(o.mezo.dist)},
          {"one_sided", o.mezo.one_sided},
          {"schedule", o.mezo.schedule == ScheduleKind::Constant ? "constant" : "linear"},
          {"warmup_steps", o.mezo.warmup_steps},
          {"batch_size", o.batch_size},
          {"max_length", o.max_length},
          {"task", o.task},
          // 16-bit storage rounds every update stochastically: another dtype is
          // another run. The tier (ram / disk) is not: both give the same bits.
          {"storage_dtype", o.store.storage_dtype == DType::F32 ? "fp32" : o.store.storage_dtype == DType::BF16 ? "bf16" : "fp16"}};
  if (o.mezo.directions != 1) id["directions"] = o.mezo.directions;  // absent: MeZO's one (older runs)
  return id;
}

// What to do when the disk tier's working copy of run `out` cannot be used:
// `weights` is where the run's state says exact weights are (read_resume_point).
std::string disk_resume_advice(const fs::path& out, const std::string& weights) {
  const std::string from = weights.rfind("checkpoint-", 0) == 0 ? (out / weights).string() : std::string();
  return "The working copy in " + (out / "disk-weights").string() + " cannot be trusted. " +
         (from.empty() ? "The run has no intact checkpoint; move " + (out / "disk-weights").string() +
                             " away and --resume " + out.string() + " rebuilds the weights from the base model and the update log"
                       : "Resume from the newest intact checkpoint: --resume " + from +
                             " --out NEW_DIR (or move " + (out / "disk-weights").string() + " away and --resume " +
                             out.string() + ")");
}

}  // namespace

void Trainer::load_starting_weights() {
  base_model_ = opt_.model;
  opt_.store.work_dir = opt_.out / "disk-weights";
  if (opt_.resume.empty()) {
    arch_ = load_architecture(opt_.model);
    ckpt_ = std::make_unique<Checkpoint>(opt_.model);
    store_ = make_store(*arch_, *ckpt_, opt_.store, &comm_);
    return;
  }
  const ResumePoint point = read_resume_point(opt_.resume, run_identity(opt_));
  start_step_ = point.step;
  base_model_ = point.base_model;
  const std::string& weights = point.weights;
  arch_ = load_architecture(base_model_);
  std::error_code ec;
  if (fs::equivalent(opt_.out, opt_.resume, ec) && keeps_run_state(opt_.store)) {
    // The tier's own state runs ahead of the last checkpoint (a kill lands
    // anywhere): continue from it, brought to the last logged update.
    UpdateLog log = read_update_log(opt_.resume / "updates.jsonl");
    check(static_cast<int64_t>(log.records.size()) <= opt_.steps, "--resume: the run is at step ", log.records.size(),
          ", beyond --steps ", opt_.steps);
    start_step_ = static_cast<int64_t>(log.records.size());
    resumed_records_ = log.records;
    try {
      store_ = continue_store(*arch_, opt_.store, opt_.mezo.dist, opt_.mezo.weight_decay, resumed_records_);
    } catch (const Error& e) {
      fail(e.what(), "\n", disk_resume_advice(opt_.out, weights));
    }
    ckpt_ = std::make_unique<Checkpoint>(base_model_);
    std::fprintf(stderr, "zotune train: continuing the disk working copy at step %lld\n",
                 static_cast<long long>(start_step_));
    return;
  }
  std::fprintf(stderr, "zotune train: resuming at step %lld from %s\n", static_cast<long long>(start_step_),
               weights.empty() ? "the base model and the update log" : (opt_.resume / weights).c_str());
  if (!weights.empty()) {
    // Exact weights saved by the run (storage precision) at `step`.
    ckpt_ = std::make_unique<Checkpoint>(opt_.resume / weights);
    opt_.store.initial_updates = start_step_;
  } else {
    // Only the update log is exact: rebuild from the base model.
    ckpt_ = std::make_unique<Checkpoint>(base_model_);
  }
  store_ = make_store(*arch_, *ckpt_, opt_.store, &comm_);
  const fs::path& log_file = point.update_log;
  UpdateLog log = read_update_log(log_file);
  check(static_cast<int64_t>(log.records.size()) >= start_step_, log_file.string(), ": holds ", log.records.size(),
        " updates, the run stands at step ", start_step_);
  resumed_records_.assign(log.records.begin(), log.records.begin() + start_step_);
  if (weights.empty()) replay(*store_, opt_.mezo.dist, opt_.mezo.weight_decay, resumed_records_);
  check(start_step_ <= opt_.steps, "--resume: the run is at step ", start_step_, ", beyond --steps ", opt_.steps);
}

void Trainer::load_data() {
  if (has_tokenizer(base_model_)) tok_.emplace(Tokenizer::load(base_model_));
  DatasetOptions d;
  d.max_length = opt_.max_length;
  d.task = opt_.task;
  d.vocab_size = arch_->config().vocab_size;
  if (!opt_.data_dir.empty()) {
    check(opt_.seed <= 0xFFFFFFFFu, "--seed must be < 2^32 with --data-dir (numpy's seeds)");
    const MezoTaskData m = mezo_task_data(opt_.task, opt_.data_dir, opt_.num_train,
                                          opt_.num_dev >= 0 ? opt_.num_dev : default_num_dev(opt_.task),
                                          opt_.num_test, static_cast<uint32_t>(opt_.seed));
    d.task.clear();  // the sample is in zotune's own shapes
    train_ = std::make_unique<Dataset>(Dataset::parse_jsonl(m.train_jsonl, m.train_file + " (MeZO train sample)", d, tok_ ? &*tok_ : nullptr));
    eval_ = std::make_unique<Dataset>(Dataset::parse_jsonl(m.dev_jsonl, m.train_file + " (MeZO dev sample)", d, tok_ ? &*tok_ : nullptr));
    if (!m.dev.empty() && m.dev.front().ex.objective == Objective::Completion) {
      check(tok_.has_value(), base_model_.string(), ": no tokenizer; the dev set of ", opt_.task, " is scored by generation");
      dev_generation_ = m.dev;
    }
  } else {
    train_ = std::make_unique<Dataset>(Dataset::load_jsonl(opt_.data, d, tok_ ? &*tok_ : nullptr));
  }
  if (!opt_.eval.empty()) eval_ = std::make_unique<Dataset>(Dataset::load_jsonl(opt_.eval, d, tok_ ? &*tok_ : nullptr));
  // Each rank reads its slice of the global batch (data/loader.h).
  // The ranks of a perturbation pair and of every direction group read the
  // same slice (dist/layout.h).
  const int slices = opt_.layout.data;
  check(opt_.batch_size % slices == 0, "--batch-size ", opt_.batch_size, " does not split over ", slices,
        " data-parallel ranks");
  LoaderOptions lo;
  lo.batch_size = opt_.batch_size / slices;
  lo.seed = opt_.seed;
  lo.rank = opt_.layout.slice(comm_.rank());
  lo.world = slices;
  loader_ = std::make_unique<DataLoader>(*train_, lo);
}

int Trainer::run() {
  set_compute_threads(opt_.threads);
  if (opt_.memory_budget > 0) {
    // --memory-budget picks the tier and resident blocks from sizes alone
    // (--dry-run is planned by the CLI: cli/cmd_train.cpp, train/layout_plan.h).
    auto arch = load_architecture(opt_.model);
    plan_run(*arch, opt_.store, opt_.batch_size, opt_.max_length, opt_.memory_budget, assumed_machine_constants(),
             "zotune train", true, opt_.mezo.directions / std::max(opt_.layout.groups, 1));
  }
  check(!opt_.dry_run, "run_training: --dry-run is planned by the CLI (train/layout_plan.h), not run");
  StopSignals signals;  // from here on the first SIGINT/SIGTERM stops at a safe point
  if (!fs::is_directory(opt_.model)) fail("--model ", opt_.model.string(), ": not a model directory");
  {
    const auto arch = load_architecture(opt_.model);
    check_train_options(opt_, arch->config());  // before anything is created
    resolve_node_sharing(*arch, opt_.store, comm_);
  }
  check(comm_.world() == 1 || opt_.store.offload != Offload::Disk, "--offload disk does not run with ",
        comm_.world(), " ranks yet (each rank would need its own working copy); use --offload none or ram");
  // Rank 0 owns the output directory; the others write nothing.
  if (lead_) dir_ = std::make_unique<RunDir>(opt_.out, opt_.model, opt_.resume, run_identity(opt_));
  comm_.barrier();  // a rank 0 that refused the directory has ended the job
  load_starting_weights();
  load_data();
  {
    const auto& first = arch_->tensors().front();
    Checkpoint base(base_model_);
    input_dtype_ = checked_view(*arch_, base, first).dtype;
  }
  engine_ = std::make_unique<ZoEngine>(*arch_, *store_, opt_.mezo, opt_.seed, comm_, opt_.layout);
  engine_->set_stop_check(stop_requested);  // the first signal ends a step at its next block boundary (one process)
  tty_ = opt_.progress == 1 || (opt_.progress == -1 && ::isatty(STDERR_FILENO));

  // Journals: rewritten to the resumed step, then appended.
  const Json log_header = {{"format", "zotune-updates"}, {"version", 1}, {"base_model", fs::absolute(base_model_).string()},
                           {"base_model_identity", model_identity(base_model_)},
                           {"model_type", arch_->config().model_type}, {"parameters", store_->total_params()},
                           {"storage_dtype", dtype_name(store_->storage_dtype())},
                           {"run_seed", opt_.seed}, {"perturbation", zdist_name(opt_.mezo.dist)},
                           {"weight_decay", static_cast<double>(opt_.mezo.weight_decay)},
                           {"eps", static_cast<double>(opt_.mezo.eps)}, {"one_sided", opt_.mezo.one_sided}};
  if (lead_) {
    dir_->open_journals(log_header, resumed_records_, start_step_, opt_.resume, base_model_,
                        opt_.data_dir.empty() ? opt_.data : opt_.data_dir, opt_.steps);
    best_ = dir_->best_selection();
    best_step_ = dir_->best_step();
  }

  if (lead_)
    std::fprintf(stderr, "zotune train: %s (%s, %lld parameters), %lld training examples%s, steps %lld..%lld\n",
               base_model_.c_str(), arch_->config().model_type.c_str(), static_cast<long long>(store_->total_params()),
               static_cast<long long>(train_->size()),
               eval_ ? (", " + std::to_string(eval_->size()) + " eval examples").c_str() : "",
               static_cast<long long>(start_step_ + 1), static_cast<long long>(opt_.steps));
  if (start_step_ == 0) evaluate(0);
  if (int sig = agreed_signal(stop_signal())) {
    std::fprintf(stderr, "zotune train: stopped by signal %d before step %lld. Continue with --resume %s\n", sig,
                 static_cast<long long>(start_step_ + 1), opt_.out.c_str());
    return 128 + sig;
  }
  Batch batch;
  loader_->reserve(batch);
  clock_.restart();
  for (int64_t t = start_step_; t < opt_.steps; ++t) {
    loader_->fill(t, batch);
    Stopwatch sw;
    StepResult r;
    try {
      r = engine_->step(t, opt_.steps, batch);
    } catch (const StepInterrupted& i) {  // the weights hold exactly the t steps done
      if (tty_) std::fprintf(stderr, "\n");
      if (t > start_step_) save_checkpoint_dir(t);
      dir_->write_plots();
      std::fprintf(stderr, "zotune train: stopped by signal %d in step %lld at block %d, which is dropped; %s. "
                   "Continue with --resume %s\n", stop_signal(), static_cast<long long>(i.step), i.block,
                   t > start_step_ ? "checkpoint of the steps done written" : "no step done since the start",
                   opt_.out.c_str());
      return 128 + stop_signal();
    }
    log_step(r, sw.seconds());
    progress(r.step, r.step == opt_.steps);
    const bool last = r.step == opt_.steps;
    if (opt_.eval_every > 0 && r.step % opt_.eval_every == 0 && !last) evaluate(r.step);
    if (comm_.world() > 1 && opt_.check_every > 0 && (r.step % opt_.check_every == 0 || last)) {
      engine_->flush();
      store_->sync();
      check_replicas(comm_, *store_, r.step);
    }
    if (opt_.save_every > 0 && r.step % opt_.save_every == 0 && !last) {
      save_checkpoint_dir(r.step);
      if (lead_) dir_->write_plots();
    }
    if (int sig = agreed_signal(stop_signal()); sig != 0 && !last) {
      if (tty_) std::fprintf(stderr, "\n");
      save_checkpoint_dir(r.step);
      if (!lead_) return 128 + sig;
      dir_->write_plots();
      std::fprintf(stderr, "zotune train: stopped by signal %d after step %lld; checkpoint written. Continue with --resume %s\n",
                   sig, static_cast<long long>(r.step), opt_.out.c_str());
      return 128 + sig;
    }
  }
  engine_->flush();
  if (!lead_) return 0;  // the rest is rank 0's: final evaluation and outputs (no collective below)
  // A resumed finished run already holds its final evaluation.
  if (opt_.resume.empty() || start_step_ < opt_.steps || dir_->eval_steps().empty() ||
      dir_->eval_steps().back() != static_cast<double>(opt_.steps))
    evaluate(opt_.steps);
  if (int sig = stop_signal()) {  // the final evaluation was cut short: keep the weights, evaluate on resume
    save_checkpoint_dir(opt_.steps);
    dir_->write_plots();
    std::fprintf(stderr, "zotune train: stopped by signal %d during the final evaluation; checkpoint written. "
                 "Finish with --resume %s\n", sig, opt_.out.c_str());
    return 128 + sig;
  }
  const std::string last_model = save_final();
  const DType saved = opt_.save_dtype.value_or(input_dtype_);
  dir_->sync_updates();
  if (saved == store_->storage_dtype()) dir_->write_state(opt_.out, opt_.steps, true, last_model);
  else save_checkpoint_dir(opt_.steps);
  dir_->write_plots();
  std::fprintf(stderr, "zotune train: done; model, metrics.jsonl, updates.jsonl and loss.svg in %s\n", opt_.out.c_str());
  if (int sig = stop_signal()) return 128 + sig;  // finished, but an interrupted run never reports success
  return 0;
}

int run_training(const TrainOptions& options, Comm& comm) {
  Trainer t(options, comm);
  return t.run();
}

void replay_updates(const fs::path& base_model, const fs::path& log_path, const fs::path& out,
                    std::optional<int64_t> steps, std::optional<DType> save_dtype) {
  UpdateLog log = read_update_log(log_path);
  auto arch = load_architecture(base_model);
  Checkpoint ckpt(base_model);
  // The run's codec: 16-bit storage rounds each update stochastically (keyed by
  // the update's seed), so replaying in it gives the run's bits.
  StoreOptions so;
  so.storage_dtype = *log_storage_dtype(log.header);  // read_update_log checked it
  so.offload = so.storage_dtype == DType::F32 ? Offload::None : Offload::Ram;
  const std::unique_ptr<ParamStore> stored = make_store(*arch, ckpt, so);
  ParamStore& store = *stored;
  check_log_for_model(log, log_path, arch->config().model_type, store.total_params(), steps);
  check_model_identity(log.header.value("base_model_identity", Json()), base_model, "--model", log_path.string());
  const auto dist = zdist_from_name(log.header.value("perturbation", "gaussian"));
  if (!dist) fail(log_path.string(), ":1: field 'perturbation': unknown value");
  const auto wd = static_cast<float>(log.header.value("weight_decay", 0.0));
  std::vector<UpdateRecord> recs = log.records;
  if (steps) {
    check(*steps >= 0 && *steps <= static_cast<int64_t>(recs.size()), "--steps ", *steps, ": the log holds ", recs.size(), " updates");
    recs.resize(static_cast<std::size_t>(*steps));
  }
  for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json"})
    if (fs::exists(out / f)) fail(out.string(), ": already holds ", f, "; refusing to overwrite it");
  check_output_apart(out, "--out", base_model, "--model");
  replay(store, *dist, wd, recs);
  check_weights_finite(*arch, store.reader(), "the weights after replaying " + log_path.string());
  const DType dtype = save_dtype.value_or(checked_view(*arch, ckpt, arch->tensors().front()).dtype);
  save_checkpoint(*arch, store.reader(), dtype, out);
  copy_tokenizer_files(base_model, out);
}

}  // namespace zotune

