#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "base/signals.h"
#include "data/eval_protocol.h"
#include "train/evaluate.h"
#include "train/trainer_impl.h"

namespace zotune {
namespace fs = std::filesystem;

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--:--";
  const auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
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

}  // namespace zotune
