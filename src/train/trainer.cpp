#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>

#include "base/error.h"
#include "base/fs.h"
#include "base/paths.h"
#include "base/signals.h"
#include "base/threads.h"
#include "base/timer.h"
#include "data/dataset.h"
#include "data/eval.h"
#include "data/eval_protocol.h"
#include "data/task_files.h"
#include "data/loader.h"
#include "io/json_file.h"
#include "io/model_identity.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "store/disk_store.h"
#include "store/param_store.h"
#include "tokenizer/tokenizer.h"
#include "train/engine.h"
#include "train/evaluate.h"
#include "train/options_check.h"
#include "train/planner.h"
#include "train/replica_check.h"
#include "train/run_dir.h"
#include "train/update_log.h"
#include "zo/replay.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--:--";
  const auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

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

class Trainer {
 public:
  // Under data parallelism every rank runs the same loop on its slice of each
  // batch; only rank 0 (lead_) writes the output directory and logs.
  Trainer(const TrainOptions& o, Comm& comm) : opt_(o), comm_(comm), lead_(comm.rank() == 0) {}
  int run();

 private:
  void load_starting_weights();
  void load_data();
  void evaluate(int64_t step);
  void log_step(const StepResult& r, double step_sec);
  void progress(int64_t step, bool final);
  void save_checkpoint_dir(int64_t step);
  // The output model; returns where the last step's model is, relative to --out.
  std::string save_final();
  void save_best(Json& rec, double value);
  // The signal that stops the run, agreed by every rank (the largest received).
  int agreed_signal(int mine);
  // Flushes the pending update; a reader of the stored weights (pieces, not copies).
  TensorReader flushed_weights();

  TrainOptions opt_;
  Comm& comm_;
  bool lead_;
  fs::path base_model_;
  std::unique_ptr<Architecture> arch_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<ParamStore> store_;
  std::unique_ptr<ZoEngine> engine_;
  std::optional<Tokenizer> tok_;
  std::unique_ptr<Dataset> train_, eval_;
  std::vector<EvalExample> dev_generation_;  // --data-dir, SQuAD/DROP: the dev set, scored by greedy decoding + F1
  std::unique_ptr<DataLoader> loader_;
  DType input_dtype_ = DType::F32;
  int64_t start_step_ = 0;
  std::vector<UpdateRecord> resumed_records_;
  std::unique_ptr<RunDir> dir_;
  std::optional<double> best_;  // --select-best: the best dev value so far (F1, accuracy, or -loss)
  int64_t best_step_ = -1;      // its step
  Stopwatch clock_;
  double tokens_since_start_ = 0;
  double last_log_time_ = -1e9;
  bool tty_ = false;
  StepResult last_{};
};

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
  if (opt_.store.offload == Offload::Disk && fs::equivalent(opt_.out, opt_.resume, ec) &&
      DiskStore::has_working_copy(opt_.store.work_dir)) {
    // The disk working copy runs ahead of the last checkpoint (a kill lands
    // anywhere): continue from it, bringing every block to the last logged update.
    UpdateLog log = read_update_log(opt_.resume / "updates.jsonl");
    check(static_cast<int64_t>(log.records.size()) <= opt_.steps, "--resume: the run is at step ", log.records.size(),
          ", beyond --steps ", opt_.steps);
    start_step_ = static_cast<int64_t>(log.records.size());
    resumed_records_ = log.records;
    try {
      auto disk = DiskStore::open_existing(*arch_, disk_store_options(opt_.store));
      disk->catch_up(opt_.mezo.dist, opt_.mezo.weight_decay, resumed_records_);
      store_ = std::move(disk);
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

void Trainer::evaluate(int64_t step) {
  if (!eval_) return;
  // One θ per node: its ranks apply the pending update together (node_shared_store.h).
  if (opt_.store.share_node_weights) engine_->flush();
  if (!lead_) return;  // rank 0 evaluates and reports; the others only take steps
  const int64_t bs = opt_.eval_batch_size > 0 ? opt_.eval_batch_size : opt_.batch_size;
  EvalLoader el(*eval_, bs);
  Batch batch;
  el.reserve(batch);
  std::vector<int64_t> examples;
  double loss_sum = 0, weight = 0;
  int64_t counted = 0;
  AccuracyCounter accuracy;
  for (int64_t i = 0; i < el.num_batches(); ++i) {
    if (stop_requested()) return;  // abandoned: no record; the caller checkpoints
    if (opt_.max_eval_examples > 0 && counted >= opt_.max_eval_examples) break;
    el.fill(i, batch);
    if (batch.B == 0) continue;
    BatchLoss l = engine_->evaluate(batch);
    el.examples_for_batch(i, examples);
    if (batch.objective == Objective::Classification) {
      loss_sum += l.loss * static_cast<double>(l.examples);
      weight += static_cast<double>(l.examples);
      accuracy.add(*eval_, batch, l.predictions);
    } else {
      loss_sum += l.loss * static_cast<double>(l.scored);
      weight += static_cast<double>(l.scored);
    }
    counted += static_cast<int64_t>(examples.size());
  }
  Json rec = {{"type", "eval"}, {"step", step}, {"loss", weight > 0 ? loss_sum / weight : 0.0}, {"examples", counted},
              {"elapsed_sec", clock_.seconds()}};
  if (eval_->objective() == Objective::Classification) rec["accuracy"] = accuracy.accuracy();
  if (!dev_generation_.empty()) {
    // MeZO's metric for SQuAD/DROP: greedy decoding through this step's weights.
    engine_->flush();
    store_->sync();
    const StoreWeights weights(*store_);
    std::span<const EvalExample> dev(dev_generation_);
    if (opt_.max_eval_examples > 0 && static_cast<int64_t>(dev.size()) > opt_.max_eval_examples)
      dev = dev.first(static_cast<std::size_t>(opt_.max_eval_examples));
    const EvalTotals t = evaluate_weights(*arch_, weights.ptrs(), *tok_, dev, EvalSettings{0, 50}, {}, stop_requested);
    if (stop_requested()) return;
    rec["f1"] = t.value();
    rec["em"] = t.mean_em();
    rec["generated"] = t.n;
  }
  rec["metric"] = rec.contains("f1") ? "f1" : rec.contains("accuracy") ? "accuracy" : "loss";
  if (opt_.select_best) {
    const std::string metric = rec["metric"];
    save_best(rec, metric == "loss" ? -rec["loss"].get<double>() : rec[metric].get<double>());
  }
  dir_->append_eval(rec);
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "eval  step %lld: loss %.4f", static_cast<long long>(step), rec["loss"].get<double>());
  if (rec.contains("accuracy")) std::fprintf(stderr, ", accuracy %.2f%%", 100.0 * rec["accuracy"].get<double>());
  if (rec.contains("f1")) std::fprintf(stderr, ", F1 %.2f, EM %.2f", 100.0 * rec["f1"].get<double>(), 100.0 * rec["em"].get<double>());
  std::fprintf(stderr, " (%lld examples)\n", static_cast<long long>(counted));
}

// The first evaluation with the best value (MeZO: load_best_model_at_end)
// exports the current weights to <out>/best/, which appears whole.
void Trainer::save_best(Json& rec, double value) {
  if (best_ && value <= *best_) return;
  best_ = value;
  best_step_ = rec["step"].get<int64_t>();
  rec["best"] = true;
  rec["selection_value"] = value;
  const fs::path dir = opt_.out / "best", tmp = opt_.out / "best.tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_checkpoint(*arch_, flushed_weights(), opt_.save_dtype.value_or(input_dtype_), tmp);
  copy_tokenizer_files(base_model_, tmp);
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

void Trainer::log_step(const StepResult& r, double step_sec) {
  const double loss = opt_.mezo.one_sided ? r.loss_minus : 0.5 * (r.loss_plus + r.loss_minus);
  tokens_since_start_ += static_cast<double>(r.tokens);
  Json rec = {{"type", "train"},
              {"step", r.step},
              {"loss", loss},
              {"loss_plus", r.loss_plus},
              {"loss_minus", r.loss_minus},
              {"projected_grad", r.grad},
              {"lr", static_cast<double>(r.lr)},
              {"tokens", r.tokens},
              {"step_sec", step_sec},
              {"tokens_per_sec", static_cast<double>(r.tokens) / step_sec},
              {"epoch", loader_->epoch_at(r.step)},
              {"elapsed_sec", clock_.seconds()}};
  if (r.grad_k.size() > 1) {  // --directions K: the fields above are means over the K
    rec["direction_loss_plus"] = r.loss_plus_k;
    rec["direction_loss_minus"] = r.loss_minus_k;
    rec["direction_grads"] = r.grad_k;
  }
  last_ = r;
  if (lead_) dir_->append_train(rec, *engine_->pending());  // the record of step r
}

void Trainer::progress(int64_t step, bool final) {
  if (!lead_) return;
  const double el = clock_.seconds();
  const int64_t done = step - start_step_, todo = opt_.steps - step;
  const double tps = el > 0 ? tokens_since_start_ / el : 0;
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(todo) : NAN;
  // A smoothed loss reads better than the noisy per-step one.
  const std::vector<double>& losses = dir_->train_losses();
  double smooth = 0;
  const std::size_t k = std::min<std::size_t>(losses.size(), 20);
  for (std::size_t i = losses.size() - k; i < losses.size(); ++i) smooth += losses[i];
  if (k) smooth /= static_cast<double>(k);
  if (tty_) {
    const int width = 28;
    const int fill = opt_.steps ? static_cast<int>(width * step / opt_.steps) : width;
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[K[%s] %lld/%lld loss %.4f  %.0f tok/s  ETA %s", bar.c_str(),
                 static_cast<long long>(step), static_cast<long long>(opt_.steps), smooth, tps, hms(eta).c_str());
    if (final) std::fprintf(stderr, "\n");
  } else if (final || el - last_log_time_ >= 10.0 || done == 1) {
    std::fprintf(stderr, "step %lld/%lld loss %.4f (avg of last %zu) g %.4g lr %.3g %.0f tok/s elapsed %s ETA %s\n",
                 static_cast<long long>(step), static_cast<long long>(opt_.steps), smooth, k, last_.grad,
                 static_cast<double>(last_.lr), tps, hms(el).c_str(), hms(eta).c_str());
    last_log_time_ = el;
  }
}

TensorReader Trainer::flushed_weights() {
  engine_->flush();
  store_->sync();
  return store_->reader();
}

void Trainer::save_checkpoint_dir(int64_t step) {
  // Rank 0 writes. The others keep the update pending: a flushed and a fused
  // update give the same bits (the resume tests hold that), so ranks agree.
  // One θ per node: its ranks flush together (node_shared_store.h).
  if (opt_.store.share_node_weights) engine_->flush();
  if (!lead_) return;
  dir_->write_checkpoint(step, step >= opt_.steps, opt_.keep_checkpoints, [&](const fs::path& tmp) {
    save_checkpoint(*arch_, flushed_weights(), store_->storage_dtype(), tmp);
  });
}

std::string Trainer::save_final() {
  const DType dtype = opt_.save_dtype.value_or(input_dtype_);
  const fs::path best = opt_.out / "best";
  if (!opt_.select_best || best_step_ < 0 || !fs::exists(best / "config.json")) {
    replace_checkpoint(*arch_, flushed_weights(), dtype, opt_.out);
    copy_tokenizer_files(base_model_, opt_.out);
    return ".";
  }
  // MeZO's load_best_model_at_end: the output model is the best dev
  // evaluation's (best/'s bytes); the last step's, which updates.jsonl and
  // --resume continue from, goes to last/.
  const fs::path last = opt_.out / "last";
  fs::create_directories(last);
  replace_checkpoint(*arch_, flushed_weights(), dtype, last);
  copy_tokenizer_files(base_model_, last);
  const Checkpoint best_ckpt(best);
  const DType best_dtype = checked_view(*arch_, best_ckpt, arch_->tensors().front()).dtype;
  replace_checkpoint(*arch_, checkpoint_reader(*arch_, best_ckpt), best_dtype, opt_.out);
  copy_tokenizer_files(best, opt_.out);
  dir_->set_state_extra({{"best_step", best_step_}, {"last_model", "last"}});
  return "last";
}

int Trainer::agreed_signal(int mine) {
  if (comm_.world() == 1) return mine;
  const double me = mine;
  int sig = 0;
  for (double s : comm_.allgather({&me, 1})) sig = std::max(sig, static_cast<int>(s));
  return sig;
}

int Trainer::run() {
  set_compute_threads(opt_.threads);
  if (opt_.memory_budget > 0) {
    // --memory-budget picks the tier and resident blocks from sizes alone
    // (--dry-run is planned by the CLI: cli/cmd_train.cpp, train/layout_plan.h).
    auto arch = load_architecture(opt_.model);
    plan_run(*arch, opt_.store, opt_.batch_size, opt_.max_length, opt_.memory_budget, assumed_machine_constants(),
             "zotune train", true);
  }
  check(!opt_.dry_run, "run_training: --dry-run is planned by the CLI (train/layout_plan.h), not run");
  StopSignals signals;  // from here on the first SIGINT/SIGTERM stops at a safe point
  if (!fs::is_directory(opt_.model)) fail("--model ", opt_.model.string(), ": not a model directory");
  check_train_options(opt_, load_architecture(opt_.model)->config());  // before anything is created
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

}  // namespace

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
