// The output directory of `zotune train` and everything written into it:
//   config.json, model.safetensors, tokenizer files   the fine-tuned model (HF layout): the last
//                                                      step's, or with --select-best the best dev evaluation's
//   trainer_state.json                                 where the run stands (resume reads it)
//   updates.jsonl                                      header + (step, seed, lr, grad) per step
//   metrics.jsonl                                      one record per step and per evaluation
//   loss.svg, accuracy.svg, f1.svg                     train/eval curves of metrics.jsonl
//   checkpoint-<step>/                                 exact (storage-precision) weights + state + log
//   best/                                              --select-best: the best dev evaluation's model (trainer.cpp)
//   last/                                              --select-best, finished: the last step's model
// RunDir checks --out (never the input model or inside it; empty, a run of ours
// stopped before its first step, or the run being resumed), holds its lock,
// keeps the two journals (rewritten atomically up to the resumed step, then
// appended and flushed per record), writes the state file and checkpoint
// directories atomically and keeps the newest. read_resume_point says where a
// run or checkpoint to resume stands.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "train/run_lock.h"
#include "train/update_log.h"
#include "zo/mezo.h"

namespace zotune {

// Copies the tokenizer files of a model directory that exist (atomically).
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);
bool has_tokenizer(const std::filesystem::path& dir);

// Where a run to resume (a run directory or one of its checkpoints) stands.
struct ResumePoint {
  int64_t step = 0;
  std::filesystem::path base_model;
  std::string weights;               // exact weights' directory relative to the resume dir ("" = none)
  std::filesystem::path update_log;  // the log of the updates so far
};
// Reads `dir`/trainer_state.json; `identity` (run_identity) must match the run's
// fields, else an error naming the field and both values.
ResumePoint read_resume_point(const std::filesystem::path& dir, const Json& identity);

class RunDir {
 public:
  // Checks `out` against the input model and an earlier run (`resume`: the
  // directory being resumed, or empty) and creates it.
  RunDir(const std::filesystem::path& out, const std::filesystem::path& model, const std::filesystem::path& resume,
         Json identity);
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::filesystem::path& path() const { return out_; }

  // Starts the journals at step `start_step`: updates.jsonl = header + records,
  // metrics.jsonl = the records of `resume`/metrics.jsonl up to that step (their
  // curves kept for the plots), both then open for appending. Writes the state.
  void open_journals(const Json& log_header, const std::vector<UpdateRecord>& records, int64_t start_step,
                     const std::filesystem::path& resume, const std::filesystem::path& base_model,
                     const std::filesystem::path& data, int64_t total_steps);
  void append_train(const Json& record, const UpdateRecord& update);  // "loss" is plotted
  void append_eval(const Json& record);                               // "loss", "accuracy" are plotted
  const std::vector<double>& train_losses() const { return train_loss_; }
  // Steps of the evaluations recorded so far (kept from a resumed run, then appended).
  const std::vector<double>& eval_steps() const { return eval_step_; }
  // --select-best: the selection value of the best evaluation kept from the
  // resumed metrics.jsonl (its record carries "best": true), if any.
  const std::optional<double>& best_selection() const { return best_selection_; }
  int64_t best_step() const { return best_step_; }  // its step, -1 if none
  // Fields added to every trainer_state.json written from now on (e.g. best_step).
  void set_state_extra(Json extra) { state_extra_ = std::move(extra); }

  // trainer_state.json of `dir` (the run's or a checkpoint's).
  void write_state(const std::filesystem::path& dir, int64_t step, bool finished, const std::string& weights);
  // checkpoint-<step>/: `write_weights(dir)` saves the weights, then its state
  // and its update log; the directory appears whole; the newest `keep` stay.
  void write_checkpoint(int64_t step, bool finished, int64_t keep,
                        const std::function<void(const std::filesystem::path&)>& write_weights);
  // fsyncs updates.jsonl.
  void sync_updates();
  void write_plots() const;

 private:
  void append_metric(const Json& j);

  std::filesystem::path out_;
  std::optional<RunLock> lock_;  // held for the run's life (train/run_lock.h)
  Json identity_;
  std::filesystem::path base_model_, data_;
  int64_t total_steps_ = 0;
  Json log_header_;
  std::vector<UpdateRecord> records_;  // every update of the run so far
  std::unique_ptr<UpdateLogAppender> updates_;
  std::FILE* metrics_ = nullptr;
  std::vector<double> train_step_, train_loss_, eval_step_, eval_loss_, eval_acc_, eval_f1_step_, eval_f1_;
  std::optional<double> best_selection_;
  int64_t best_step_ = -1;
  Json state_extra_ = Json::object();
};

}  // namespace zotune
