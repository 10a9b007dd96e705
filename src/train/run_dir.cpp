#include "train/run_dir.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "base/error.h"
#include "base/fs.h"
#include "base/paths.h"
#include "io/model_identity.h"
#include "train/plot.h"
#include "train/trainer_state.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json",
                                           "vocab.json",            "merges.txt",            "tokenizer.model",
                                           "added_tokens.json",     "generation_config.json"};

std::string checkpoint_name(int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "checkpoint-%06lld", static_cast<long long>(step));
  return buf;
}

// The option of a run identity field, for error messages.
std::string option_of(const std::string& key) {
  if (key == "run_seed") return "--seed";
  std::string o = "--" + key;
  std::replace(o.begin(), o.end(), '_', '-');
  return o;
}

// `dir`/`name` holds a checkpoint that loads: its state (at step `step` when
// given), its update log and its weights.
bool intact_checkpoint(const fs::path& dir, const std::string& name, std::optional<int64_t> step = std::nullopt) {
  const fs::path c = dir / name;
  std::error_code ec;
  if (!fs::is_regular_file(c / "trainer_state.json", ec) || !fs::is_regular_file(c / "updates.jsonl", ec)) return false;
  if (!fs::is_regular_file(c / "model.safetensors", ec) && !fs::is_regular_file(c / "model.safetensors.index.json", ec))
    return false;
  try {
    const TrainerState st = read_trainer_state(c / "trainer_state.json");
    return !step || st.step == *step;
  } catch (const Error&) {
    return false;
  }
}

// The newest intact checkpoint-N of run directory `dir` with N <= `step`: its name and N.
std::optional<std::pair<std::string, int64_t>> newest_checkpoint(const fs::path& dir, int64_t step) {
  std::optional<std::pair<std::string, int64_t>> best;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) != 0 || n.find(".tmp") != std::string::npos) continue;
    char* end = nullptr;
    const long long k = std::strtoll(n.c_str() + 11, &end, 10);
    if (!end || *end != '\0' || k < 0 || k > step || (best && best->second >= k)) continue;
    if (intact_checkpoint(dir, n, k)) best = std::make_pair(n, static_cast<int64_t>(k));
  }
  return best;
}

}  // namespace

void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  for (const char* f : kTokenizerFiles)
    if (fs::exists(from / f)) copy_file_atomic(from / f, to / f);
}

bool has_tokenizer(const fs::path& dir) { return fs::exists(dir / "tokenizer.json") || fs::exists(dir / "vocab.json"); }

ResumePoint read_resume_point(const fs::path& dir, const Json& identity) {
  const fs::path state_file = dir / "trainer_state.json";
  if (!fs::exists(state_file) && fs::exists(dir / kRunMarkFile))
    fail("--resume ", dir.string(), ": the run was stopped before its first step was recorded; nothing to resume. "
         "Start it again with the same command without --resume");
  if (!fs::exists(state_file)) fail("--resume ", dir.string(), ": no trainer_state.json (not a zotune run or checkpoint)");
  const TrainerState st = read_trainer_state(state_file);
  ResumePoint p;
  p.step = st.step;
  for (auto& [k, v] : identity.items())
    if (st.run.contains(k) && st.run[k] != v)
      fail("--resume: the run used ", option_of(k), " ", json_excerpt(st.run[k]), ", this command gives ", v.dump(),
           " (", state_file.string(), " field 'run.", k, "'); pass the same options to continue it");
  p.base_model = st.base_model;
  check_model_identity(st.base_identity, p.base_model, "--resume: base model", state_file.string());
  p.weights = st.weights;
  // Exact weights beat a rebuild from the base model: the state names them
  // unless a resume was stopped before its first checkpoint; a named
  // checkpoint that is gone or damaged gives way to the newest intact one.
  const bool named_ok = p.weights == "." ? fs::is_regular_file(dir / "model.safetensors") ||
                                               fs::is_regular_file(dir / "model.safetensors.index.json")
                                         : !p.weights.empty() && intact_checkpoint(dir, p.weights);
  if (!named_ok) {
    p.weights.clear();
    if (const auto c = newest_checkpoint(dir, st.step)) {
      p.weights = c->first;
      p.step = c->second;
    }
  }
  p.update_log = dir / "updates.jsonl";
  if (!fs::exists(p.update_log) && !st.updates.empty()) p.update_log = dir / st.updates;
  return p;
}

RunDir::RunDir(const fs::path& out, const fs::path& model, const fs::path& resume, Json identity)
    : out_(out), identity_(std::move(identity)) {
  check(!out.empty(), "--out is required");
  std::error_code ec;
  if (fs::exists(out) && fs::exists(model) && fs::equivalent(out, model, ec))
    fail("--out ", out.string(), " is the input model directory; the input is never modified");
  check_output_apart(out, "--out", model, "--model");
  const bool ours = fs::exists(out / "trainer_state.json");
  const bool resuming_here = !resume.empty() && fs::exists(out) && fs::equivalent(out, resume, ec);
  if (fs::exists(out) && !fs::is_directory(out)) fail("--out ", out.string(), " is not a directory");
  if (fs::exists(out)) {
    const bool zotunes = ours || fs::exists(out / kRunMarkFile) || fs::is_empty(out);
    if (zotunes || resuming_here) lock_.emplace(out);  // one run per directory, for the run's life
    if (!resuming_here && !(zotunes && (run_dir_is_empty(out) || clear_unstarted_run(out)))) {
      if (ours) fail("--out ", out.string(), " already holds a training run; resume it with --resume ", out.string(), " or choose another --out");
      fail("--out ", out.string(), " is not empty; refusing to write into a directory zotune did not create");
    }
  }
  fs::create_directories(out);
  if (!lock_) lock_.emplace(out);
}

RunDir::~RunDir() {
  if (metrics_) std::fclose(metrics_);
}

void RunDir::open_journals(const Json& log_header, const std::vector<UpdateRecord>& records, int64_t start_step,
                           const fs::path& resume, const fs::path& base_model, const fs::path& data,
                           int64_t total_steps) {
  log_header_ = log_header;
  records_ = records;
  base_model_ = base_model;
  data_ = data;
  total_steps_ = total_steps;
  write_update_log(out_ / "updates.jsonl", UpdateLog{log_header_, records_});
  std::string kept;
  if (start_step > 0 && fs::exists(resume / "metrics.jsonl")) {
    std::ifstream in(resume / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      Json j;
      try { j = Json::parse(line); } catch (const Json::parse_error&) { continue; }
      if (j.value("step", int64_t{0}) > start_step) continue;
      if (j.value("type", "") == "train") { train_step_.push_back(j["step"].get<double>()); train_loss_.push_back(j["loss"].get<double>()); }
      if (j.value("type", "") == "eval") {
        eval_step_.push_back(j["step"].get<double>());
        eval_loss_.push_back(j["loss"].get<double>());
        if (j.contains("accuracy")) eval_acc_.push_back(j["accuracy"].get<double>());
        if (j.contains("f1")) {
          eval_f1_step_.push_back(j["step"].get<double>());
          eval_f1_.push_back(j["f1"].get<double>());
        }
        if (j.value("best", false)) {
          best_selection_ = j["selection_value"].get<double>();
          best_step_ = j["step"].get<int64_t>();
        }
      }
      kept += line + "\n";
    }
  }
  write_file_atomic(out_ / "metrics.jsonl", kept);
  updates_ = std::make_unique<UpdateLogAppender>(out_ / "updates.jsonl");
  metrics_ = std::fopen((out_ / "metrics.jsonl").c_str(), "ab");
  if (!metrics_) fail("cannot open ", (out_ / "metrics.jsonl").string());
  // A resume keeps pointing at the exact weights it started from until its
  // first checkpoint (a kill before that must not fall back to the base model).
  std::error_code ec;
  const std::string start = checkpoint_name(start_step);
  const bool in_place = !resume.empty() && fs::equivalent(out_, resume, ec);
  write_state(out_, start_step, false, in_place && start_step > 0 && intact_checkpoint(out_, start, start_step) ? start : "");
}

void RunDir::append_metric(const Json& j) {
  const std::string s = j.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), metrics_) != s.size() || std::fflush(metrics_) != 0)
    fail("cannot write ", (out_ / "metrics.jsonl").string());
}

void RunDir::append_train(const Json& record, const UpdateRecord& update) {
  append_metric(record);
  train_step_.push_back(record["step"].get<double>());
  train_loss_.push_back(record["loss"].get<double>());
  records_.push_back(update);
  updates_->append(update);
}

void RunDir::append_eval(const Json& record) {
  eval_step_.push_back(record["step"].get<double>());
  eval_loss_.push_back(record["loss"].get<double>());
  if (record.contains("accuracy")) eval_acc_.push_back(record["accuracy"].get<double>());
  if (record.contains("f1")) {
    eval_f1_step_.push_back(record["step"].get<double>());
    eval_f1_.push_back(record["f1"].get<double>());
  }
  append_metric(record);
}

void RunDir::write_state(const fs::path& dir, int64_t step, bool finished, const std::string& weights) {
  Json st = {{"format", "zotune-trainer-state"},
             {"step", step},
             {"total_steps", total_steps_},
             {"finished", finished},
             {"base_model", fs::absolute(base_model_).string()},
             {"base_model_identity", log_header_.value("base_model_identity", Json())},
             {"weights", weights},
             {"updates", "updates.jsonl"},
             {"run", identity_},
             {"data", fs::absolute(data_).string()}};
  for (auto& [k, v] : state_extra_.items()) st[k] = v;
  write_file_atomic(dir / "trainer_state.json", st.dump(2) + "\n");
}

void RunDir::write_checkpoint(int64_t step, bool finished, int64_t keep,
                              const std::function<void(const fs::path&)>& write_weights) {
  const std::string name = checkpoint_name(step);
  const fs::path final_dir = out_ / name, tmp = out_ / (name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_weights(tmp);
  // A checkpoint stands alone: its exact weights, its state and its update log.
  write_update_log(tmp / "updates.jsonl", UpdateLog{log_header_, records_});
  write_state(tmp, step, finished, ".");
  updates_->sync();
  // The directory appears whole or not at all.
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  write_state(out_, step, finished, name);
  // Keep the newest `keep` directories.
  std::vector<fs::path> cks;
  for (auto& e : fs::directory_iterator(out_)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("checkpoint-", 0) == 0 && n.find(".tmp") == std::string::npos) cks.push_back(e.path());
  }
  std::sort(cks.begin(), cks.end());
  while (keep > 0 && static_cast<int64_t>(cks.size()) > keep) {
    fs::remove_all(cks.front());
    cks.erase(cks.begin());
  }
}

void RunDir::sync_updates() { updates_->sync(); }

void RunDir::write_plots() const {
  std::vector<Series> s;
  Series raw{"train loss", "#9ecae1", train_step_, train_loss_, false, 0.8};
  Series ema{"train loss (EMA)", "#08519c", train_step_, {}, false, 1.0};
  double m = train_loss_.empty() ? 0 : train_loss_[0];
  for (double v : train_loss_) ema.y.push_back(m = 0.9 * m + 0.1 * v);
  s.push_back(raw);
  s.push_back(ema);
  if (!eval_step_.empty()) s.push_back({"eval loss", "#d62728", eval_step_, eval_loss_, true, 1.0});
  write_file_atomic(out_ / "loss.svg", render_svg_plot("zotune: MeZO fine-tuning", "step", "loss", s));
  if (!eval_acc_.empty())
    write_file_atomic(out_ / "accuracy.svg",
                      render_svg_plot("zotune: evaluation accuracy", "step", "accuracy",
                                      {{"eval accuracy", "#2ca02c", eval_step_, eval_acc_, false, 1.0}}));
  if (!eval_f1_.empty())
    write_file_atomic(out_ / "f1.svg", render_svg_plot("zotune: evaluation F1", "step", "F1",
                                                       {{"eval F1", "#9467bd", eval_f1_step_, eval_f1_, false, 1.0}}));
}

}  // namespace zotune
