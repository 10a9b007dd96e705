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
#include "data/loader.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "store/disk_store.h"
#include "store/memory_plan.h"
#include "store/param_store.h"
#include "tokenizer/tokenizer.h"
#include "train/engine.h"
#include "train/options_check.h"
#include "train/plot.h"
#include "train/run_lock.h"
#include "train/trainer_state.h"
#include "train/update_log.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json",
                                           "vocab.json",            "merges.txt",            "tokenizer.model",
                                           "added_tokens.json",     "generation_config.json"};

bool has_tokenizer(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") || fs::exists(dir / "vocab.json");
}

std::string checkpoint_name(int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "checkpoint-%06lld", static_cast<long long>(step));
  return buf;
}

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--:--";
  const auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

// The run's identity: resuming with other values would not reproduce it.
Json run_identity(const TrainOptions& o) {
  return {{"run_seed", o.seed},
          {"lr", static_cast<double>(o.mezo.lr)},
          {"eps", static_cast<double>(o.mezo.eps)},
          {"weight_decay", static_cast<double>(o.mezo.weight_decay)},
          {"perturbation", zdist_name(o.mezo.dist)},
          {"one_sided", o.mezo.one_sided},
          {"schedule", o.mezo.schedule == ScheduleKind::Constant ? "constant" : "linear"},
          {"warmup_steps", o.mezo.warmup_steps},
          {"batch_size", o.batch_size},
          {"max_length", o.max_length},
          {"task", o.task}};
}

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : opt_(o) {}
  int run();

 private:
  void prepare_output();
  void load_starting_weights();
  void load_data();
  void evaluate(int64_t step);
  void log_step(const StepResult& r, double step_sec);
  void progress(int64_t step, bool final);
  void save_checkpoint_dir(int64_t step);
  void save_final();
  void write_state(const fs::path& dir, int64_t step, bool finished, const std::string& weights);
  void write_plot();
  void append_metric(const Json& j);
  // Flushes the pending update; a reader of the stored weights (pieces, not copies).
  TensorReader flushed_weights();

  TrainOptions opt_;
  std::optional<RunLock> lock_;
  fs::path base_model_;
  std::unique_ptr<Architecture> arch_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<ParamStore> store_;
  std::unique_ptr<ZoEngine> engine_;
  std::optional<Tokenizer> tok_;
  std::unique_ptr<Dataset> train_, eval_;
  std::unique_ptr<DataLoader> loader_;
  DType input_dtype_ = DType::F32;
  int64_t start_step_ = 0;
  std::vector<UpdateRecord> resumed_records_;
  std::vector<UpdateRecord> records_;  // every update of the run so far
  Json log_header_;
  std::unique_ptr<UpdateLogAppender> updates_;
  std::FILE* metrics_ = nullptr;
  std::vector<double> plot_step_, plot_loss_, eval_step_, eval_loss_, eval_acc_;
  Stopwatch clock_;
  double tokens_since_start_ = 0;
  double last_log_time_ = -1e9;
  bool tty_ = false;
  StepResult last_{};
};

void Trainer::prepare_output() {
  check(!opt_.out.empty(), "--out is required");
  std::error_code ec;
  if (fs::exists(opt_.out) && fs::exists(opt_.model) && fs::equivalent(opt_.out, opt_.model, ec))
    fail("--out ", opt_.out.string(), " is the input model directory; the input is never modified");
  check_output_apart(opt_.out, "--out", opt_.model, "--model");
  const bool ours = fs::exists(opt_.out / "trainer_state.json");
  const bool resuming_here = !opt_.resume.empty() && fs::exists(opt_.out) && fs::equivalent(opt_.out, opt_.resume, ec);
  if (fs::exists(opt_.out) && !fs::is_directory(opt_.out)) fail("--out ", opt_.out.string(), " is not a directory");
  if (fs::exists(opt_.out)) {
    const bool zotunes = ours || fs::exists(opt_.out / kRunMarkFile) || fs::is_empty(opt_.out);
    if (zotunes || resuming_here) lock_.emplace(opt_.out);  // one run per directory, for the run's life
    if (!resuming_here && !(zotunes && (run_dir_is_empty(opt_.out) || clear_unstarted_run(opt_.out)))) {
      if (ours) fail("--out ", opt_.out.string(), " already holds a training run; resume it with --resume ", opt_.out.string(), " or choose another --out");
      fail("--out ", opt_.out.string(), " is not empty; refusing to write into a directory zotune did not create");
    }
  }
  fs::create_directories(opt_.out);
  if (!lock_) lock_.emplace(opt_.out);
}

void Trainer::load_starting_weights() {
  base_model_ = opt_.model;
  opt_.store.work_dir = opt_.out / "disk-weights";
  opt_.store.seed = opt_.seed;
  if (opt_.resume.empty()) {
    arch_ = load_architecture(opt_.model);
    ckpt_ = std::make_unique<Checkpoint>(opt_.model);
    store_ = make_store(*arch_, *ckpt_, opt_.store);
    return;
  }
  const fs::path state_file = opt_.resume / "trainer_state.json";
  if (!fs::exists(state_file) && fs::exists(opt_.resume / kRunMarkFile))
    fail("--resume ", opt_.resume.string(), ": the run was stopped before its first step was recorded; nothing to resume. "
         "Start it again with the same command without --resume");
  if (!fs::exists(state_file)) fail("--resume ", opt_.resume.string(), ": no trainer_state.json (not a zotune run or checkpoint)");
  const TrainerState st = read_trainer_state(state_file);
  start_step_ = st.step;
  Json id = run_identity(opt_);
  for (auto& [k, v] : id.items())
    if (st.run.contains(k) && st.run[k] != v)
      fail("--resume: the run used ", k, " = ", json_excerpt(st.run[k]), ", this command gives ", v.dump(),
           " (", state_file.string(), " field 'run.", k, "'); pass the same options to continue it");
  base_model_ = st.base_model;
  const std::string weights = st.weights;
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
    auto disk = DiskStore::open_existing(*arch_, disk_store_options(opt_.store));
    disk->catch_up(opt_.mezo.dist, opt_.mezo.weight_decay, resumed_records_);
    store_ = std::move(disk);
    ckpt_ = std::make_unique<Checkpoint>(base_model_);
    std::fprintf(stderr, "zotune train: continuing the disk working copy at step %lld\n",
                 static_cast<long long>(start_step_));
    return;
  }
  if (!weights.empty()) {
    // Exact weights saved by the run (storage precision) at `step`.
    ckpt_ = std::make_unique<Checkpoint>(opt_.resume / weights);
    opt_.store.initial_updates = start_step_;
  } else {
    // Only the update log is exact: rebuild from the base model.
    ckpt_ = std::make_unique<Checkpoint>(base_model_);
  }
  store_ = make_store(*arch_, *ckpt_, opt_.store);
  fs::path log_file = opt_.resume / "updates.jsonl";
  if (!fs::exists(log_file) && !st.updates.empty()) log_file = opt_.resume / st.updates;
  UpdateLog log = read_update_log(log_file);
  check(static_cast<int64_t>(log.records.size()) >= start_step_, log_file.string(), ": holds ", log.records.size(),
        " updates, the run stands at step ", start_step_);
  resumed_records_.assign(log.records.begin(), log.records.begin() + start_step_);
  if (weights.empty()) apply_updates(*store_, opt_.mezo.dist, opt_.mezo.weight_decay, resumed_records_);
  check(start_step_ <= opt_.steps, "--resume: the run is at step ", start_step_, ", beyond --steps ", opt_.steps);
}

void Trainer::load_data() {
  if (has_tokenizer(base_model_)) tok_.emplace(Tokenizer::load(base_model_));
  DatasetOptions d;
  d.max_length = opt_.max_length;
  d.task = opt_.task;
  d.vocab_size = arch_->config().vocab_size;
  train_ = std::make_unique<Dataset>(Dataset::load_jsonl(opt_.data, d, tok_ ? &*tok_ : nullptr));
  if (!opt_.eval.empty()) eval_ = std::make_unique<Dataset>(Dataset::load_jsonl(opt_.eval, d, tok_ ? &*tok_ : nullptr));
  LoaderOptions lo;
  lo.batch_size = opt_.batch_size;
  lo.seed = opt_.seed;
  loader_ = std::make_unique<DataLoader>(*train_, lo);
}

void Trainer::append_metric(const Json& j) {
  const std::string s = j.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), metrics_) != s.size() || std::fflush(metrics_) != 0)
    fail("cannot write ", (opt_.out / "metrics.jsonl").string());
}

void Trainer::evaluate(int64_t step) {
  if (!eval_) return;
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
  eval_step_.push_back(static_cast<double>(step));
  eval_loss_.push_back(rec["loss"].get<double>());
  if (eval_->objective() == Objective::Classification) {
    rec["accuracy"] = accuracy.accuracy();
    eval_acc_.push_back(rec["accuracy"].get<double>());
  }
  append_metric(rec);
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "eval  step %lld: loss %.4f", static_cast<long long>(step), rec["loss"].get<double>());
  if (rec.contains("accuracy")) std::fprintf(stderr, ", accuracy %.2f%%", 100.0 * rec["accuracy"].get<double>());
  std::fprintf(stderr, " (%lld examples)\n", static_cast<long long>(counted));
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
  append_metric(rec);
  plot_step_.push_back(static_cast<double>(r.step));
  plot_loss_.push_back(loss);
  records_.push_back(UpdateRecord{r.step, r.seed, r.lr, static_cast<float>(r.grad)});
  updates_->append(records_.back());
  last_ = r;
}

void Trainer::progress(int64_t step, bool final) {
  const double el = clock_.seconds();
  const int64_t done = step - start_step_, todo = opt_.steps - step;
  const double tps = el > 0 ? tokens_since_start_ / el : 0;
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(todo) : NAN;
  // A smoothed loss reads better than the noisy per-step one.
  double smooth = 0;
  const std::size_t k = std::min<std::size_t>(plot_loss_.size(), 20);
  for (std::size_t i = plot_loss_.size() - k; i < plot_loss_.size(); ++i) smooth += plot_loss_[i];
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

void Trainer::write_state(const fs::path& dir, int64_t step, bool finished, const std::string& weights) {
  Json st = {{"format", "zotune-trainer-state"},
             {"step", step},
             {"total_steps", opt_.steps},
             {"finished", finished},
             {"base_model", fs::absolute(base_model_).string()},
             {"weights", weights},
             {"updates", "updates.jsonl"},
             {"run", run_identity(opt_)},
             {"data", fs::absolute(opt_.data).string()}};
  write_file_atomic(dir / "trainer_state.json", st.dump(2) + "\n");
}

void Trainer::save_checkpoint_dir(int64_t step) {
  const std::string name = checkpoint_name(step);
  const fs::path final_dir = opt_.out / name, tmp = opt_.out / (name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_checkpoint(*arch_, flushed_weights(), store_->storage_dtype(), tmp);
  // A checkpoint stands alone: its exact weights, its state and its update log.
  write_update_log(tmp / "updates.jsonl", UpdateLog{log_header_, records_});
  write_state(tmp, step, step >= opt_.steps, ".");
  updates_->sync();
  // The directory appears whole or not at all.
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  write_state(opt_.out, step, step >= opt_.steps, name);
  // Keep the newest keep_checkpoints directories.
  std::vector<fs::path> cks;
  for (auto& e : fs::directory_iterator(opt_.out)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("checkpoint-", 0) == 0 && n.find(".tmp") == std::string::npos) cks.push_back(e.path());
  }
  std::sort(cks.begin(), cks.end());
  while (opt_.keep_checkpoints > 0 && static_cast<int64_t>(cks.size()) > opt_.keep_checkpoints) {
    fs::remove_all(cks.front());
    cks.erase(cks.begin());
  }
}

void Trainer::save_final() {
  const DType dtype = opt_.save_dtype.value_or(input_dtype_);
  replace_checkpoint(*arch_, flushed_weights(), dtype, opt_.out);
  for (const char* f : kTokenizerFiles)
    if (fs::exists(base_model_ / f)) copy_file_atomic(base_model_ / f, opt_.out / f);
}

void Trainer::write_plot() {
  std::vector<Series> s;
  Series raw{"train loss", "#9ecae1", plot_step_, plot_loss_, false, 0.8};
  Series ema{"train loss (EMA)", "#08519c", plot_step_, {}, false, 1.0};
  double m = plot_loss_.empty() ? 0 : plot_loss_[0];
  for (double v : plot_loss_) ema.y.push_back(m = 0.9 * m + 0.1 * v);
  s.push_back(raw);
  s.push_back(ema);
  if (!eval_step_.empty()) s.push_back({"eval loss", "#d62728", eval_step_, eval_loss_, true, 1.0});
  write_file_atomic(opt_.out / "loss.svg", render_svg_plot("zotune: MeZO fine-tuning", "step", "loss", s));
  if (!eval_acc_.empty())
    write_file_atomic(opt_.out / "accuracy.svg",
                      render_svg_plot("zotune: evaluation accuracy", "step", "accuracy",
                                      {{"eval accuracy", "#2ca02c", eval_step_, eval_acc_, false, 1.0}}));
}

int Trainer::run() {
  set_compute_threads(opt_.threads);
  if (opt_.dry_run || opt_.memory_budget > 0) {
    // The plan needs only config.json: --dry-run works on a directory without weights.
    auto arch = load_architecture(opt_.model);
    const PlanInput in = plan_input(opt_.store, opt_.batch_size, opt_.max_length, compute_threads());
    // --dry-run estimates time from this machine's measured sgemm rate, ZO pass
    // and memory bandwidth, and for the disk tier the bandwidth of the disk the
    // working copy would go to (~0.5 s); choosing a tier needs sizes only.
    MachineConstants mc = assumed_machine_constants();
    if (opt_.dry_run) {
      const bool disk = opt_.store.offload == Offload::Disk || opt_.memory_budget > 0;
      fs::path probe_dir;
      if (disk) {
        std::error_code ec;
        probe_dir = fs::absolute(opt_.out, ec);
        while (!probe_dir.empty() && !fs::is_directory(probe_dir, ec) && probe_dir != probe_dir.parent_path())
          probe_dir = probe_dir.parent_path();
      }
      mc = probe_machine(probe_dir);
    }
    MemoryPlan plan;
    if (opt_.memory_budget > 0) {
      PlanChoice choice = choose_plan(*arch, opt_.memory_budget, in, mc);
      std::fprintf(stderr, "zotune train: --memory-budget: %s\n", choice.why.c_str());
      if (!choice.fits && !opt_.dry_run) fail("--memory-budget: ", choice.why);
      plan = choice.plan;
      apply_plan_tier(plan.input, opt_.store);
    } else {
      plan = plan_memory(*arch, in, mc);
    }
    if (opt_.dry_run) {
      std::printf("%s", plan_table(plan).c_str());
      std::printf("%s\n", plan_json(plan).dump().c_str());
      return 0;
    }
  }
  StopSignals signals;  // from here on the first SIGINT/SIGTERM stops at a safe point
  if (!fs::is_directory(opt_.model)) fail("--model ", opt_.model.string(), ": not a model directory");
  check_train_options(opt_, load_architecture(opt_.model)->config());  // before anything is created
  prepare_output();
  load_starting_weights();
  load_data();
  {
    const auto& first = arch_->tensors().front();
    Checkpoint base(base_model_);
    input_dtype_ = checked_view(*arch_, base, first).dtype;
  }
  engine_ = std::make_unique<ZoEngine>(*arch_, *store_, opt_.mezo, opt_.seed);
  tty_ = opt_.progress == 1 || (opt_.progress == -1 && ::isatty(STDERR_FILENO));

  // Journals: rewritten to the resumed step, then appended.
  log_header_ = {{"format", "zotune-updates"}, {"version", 1}, {"base_model", fs::absolute(base_model_).string()},
                 {"model_type", arch_->config().model_type}, {"parameters", store_->total_params()},
                 {"run_seed", opt_.seed}, {"perturbation", zdist_name(opt_.mezo.dist)},
                 {"weight_decay", static_cast<double>(opt_.mezo.weight_decay)},
                 {"eps", static_cast<double>(opt_.mezo.eps)}, {"one_sided", opt_.mezo.one_sided}};
  records_ = resumed_records_;
  write_update_log(opt_.out / "updates.jsonl", UpdateLog{log_header_, records_});
  {
    std::string kept;
    if (start_step_ > 0 && fs::exists(opt_.resume / "metrics.jsonl")) {
      std::ifstream in(opt_.resume / "metrics.jsonl");
      std::string line;
      while (std::getline(in, line)) {
        Json j;
        try { j = Json::parse(line); } catch (const Json::parse_error&) { continue; }
        if (j.value("step", int64_t{0}) > start_step_) continue;
        if (j.value("type", "") == "train") { plot_step_.push_back(j["step"].get<double>()); plot_loss_.push_back(j["loss"].get<double>()); }
        if (j.value("type", "") == "eval") {
          eval_step_.push_back(j["step"].get<double>());
          eval_loss_.push_back(j["loss"].get<double>());
          if (j.contains("accuracy")) eval_acc_.push_back(j["accuracy"].get<double>());
        }
        kept += line + "\n";
      }
    }
    write_file_atomic(opt_.out / "metrics.jsonl", kept);
  }
  updates_ = std::make_unique<UpdateLogAppender>(opt_.out / "updates.jsonl");
  metrics_ = std::fopen((opt_.out / "metrics.jsonl").c_str(), "ab");
  if (!metrics_) fail("cannot open ", (opt_.out / "metrics.jsonl").string());
  struct Closer { std::FILE*& f; ~Closer() { if (f) std::fclose(f); f = nullptr; } } closer{metrics_};
  write_state(opt_.out, start_step_, false, "");

  std::fprintf(stderr, "zotune train: %s (%s, %lld parameters), %lld training examples%s, steps %lld..%lld\n",
               base_model_.c_str(), arch_->config().model_type.c_str(), static_cast<long long>(store_->total_params()),
               static_cast<long long>(train_->size()),
               eval_ ? (", " + std::to_string(eval_->size()) + " eval examples").c_str() : "",
               static_cast<long long>(start_step_ + 1), static_cast<long long>(opt_.steps));
  if (start_step_ == 0) evaluate(0);
  if (int sig = stop_signal()) {
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
    StepResult r = engine_->step(t, opt_.steps, batch);
    log_step(r, sw.seconds());
    progress(r.step, r.step == opt_.steps);
    const bool last = r.step == opt_.steps;
    if (opt_.eval_every > 0 && r.step % opt_.eval_every == 0 && !last) evaluate(r.step);
    if (opt_.save_every > 0 && r.step % opt_.save_every == 0 && !last) {
      save_checkpoint_dir(r.step);
      write_plot();
    }
    if (int sig = stop_signal(); sig != 0 && !last) {
      if (tty_) std::fprintf(stderr, "\n");
      save_checkpoint_dir(r.step);
      write_plot();
      std::fprintf(stderr, "zotune train: stopped by signal %d after step %lld; checkpoint written. Continue with --resume %s\n",
                   sig, static_cast<long long>(r.step), opt_.out.c_str());
      return 128 + sig;
    }
  }
  engine_->flush();
  // A resumed finished run already holds its final evaluation.
  if (opt_.resume.empty() || start_step_ < opt_.steps || eval_step_.empty() || eval_step_.back() != opt_.steps)
    evaluate(opt_.steps);
  if (int sig = stop_signal()) {  // the final evaluation was cut short: keep the weights, evaluate on resume
    save_checkpoint_dir(opt_.steps);
    write_plot();
    std::fprintf(stderr, "zotune train: stopped by signal %d during the final evaluation; checkpoint written. "
                 "Finish with --resume %s\n", sig, opt_.out.c_str());
    return 128 + sig;
  }
  save_final();
  const DType saved = opt_.save_dtype.value_or(input_dtype_);
  updates_->sync();
  if (saved == store_->storage_dtype()) write_state(opt_.out, opt_.steps, true, ".");
  else {
    save_checkpoint_dir(opt_.steps);
  }
  write_plot();
  std::fprintf(stderr, "zotune train: done; model, metrics.jsonl, updates.jsonl and loss.svg in %s\n", opt_.out.c_str());
  if (int sig = stop_signal()) return 128 + sig;  // finished, but an interrupted run never reports success
  return 0;
}

}  // namespace

int run_training(const TrainOptions& options) {
  Trainer t(options);
  return t.run();
}

void replay_updates(const fs::path& base_model, const fs::path& log_path, const fs::path& out,
                    std::optional<int64_t> steps, std::optional<DType> save_dtype) {
  UpdateLog log = read_update_log(log_path);
  auto arch = load_architecture(base_model);
  Checkpoint ckpt(base_model);
  RamStore store(*arch, ckpt);
  check_log_for_model(log, log_path, arch->config().model_type, store.total_params(), steps);
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
  apply_updates(store, *dist, wd, recs);
  check_weights_finite(*arch, store.reader(), "the weights after replaying " + log_path.string());
  const DType dtype = save_dtype.value_or(checked_view(*arch, ckpt, arch->tensors().front()).dtype);
  save_checkpoint(*arch, store.reader(), dtype, out);
  for (const char* f : kTokenizerFiles)
    if (fs::exists(base_model / f)) copy_file_atomic(base_model / f, out / f);
}

}  // namespace zotune
