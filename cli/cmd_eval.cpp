// zotune eval --model DIR --task NAME --data-dir D [--mode zero-shot|icl] [--demos K] [--demo-sets shared|per-example] [--num-test N]
//             [--seed S] [--predictions FILE] [--calibrate [--icl-sfc]] [--max-length T] [--max-new-tokens N]
// zotune eval --model DIR --data FILE.jsonl [--task NAME] ...
// Prints one JSON line {"task", "mode", "metric", "value", "n", ...}; with
// --predictions writes one JSON line per test example (docs/evaluation.md).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "base/fs.h"
#include "base/threads.h"
#include "commands.h"
#include "data/eval_protocol.h"
#include "data/task_files.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"
#include "train/evaluate.h"

namespace zotune::cli {

namespace {
using OJson = nlohmann::ordered_json;  // output keys in the documented order

struct EvalArgs {
  std::string model, task, data_dir, data, mode = "zero-shot", predictions, demo_sets = "shared";
  int64_t demos = 32, num_test = kDefaultNumTest, max_length = 0, max_new_tokens = 50;
  uint32_t seed = 0;
  bool calibrate = false, icl_sfc = false;
  int threads = 0;
};

OJson candidates_json(const EvalResult& r, bool calibrate) {
  OJson out = OJson::array();
  for (const CandidateScore& c : r.candidates) {
    OJson j = {{"text", c.text}, {"score", c.score}, {"tokens", c.tokens}};
    if (calibrate) j["calibration"] = c.calibration;
    out.push_back(std::move(j));
  }
  return out;
}

void run_eval(const EvalArgs& a) {
  set_compute_threads(a.threads);
  if (a.data_dir.empty() == a.data.empty()) fail("give exactly one of --data-dir and --data");
  if (a.mode != "zero-shot" && a.mode != "icl") fail("--mode: unknown value '", a.mode, "' (zero-shot, icl)");
  const bool icl = a.mode == "icl";
  if (icl && a.data_dir.empty()) fail("--mode icl samples demonstrations from the train split: it needs --data-dir");
  if (icl && a.demos < 1) fail("--demos must be >= 1 with --mode icl");
  if (a.num_test < 1) fail("--num-test must be >= 1");
  if (a.icl_sfc && !icl) fail("--icl-sfc puts the demonstrations before the calibration prompt: it needs --mode icl");
  const bool calibrate = a.calibrate || a.icl_sfc;
  const Calibration calibration = !calibrate ? Calibration::None : a.icl_sfc ? Calibration::IclSfc : Calibration::Sfc;
  if (!a.data_dir.empty() && a.task.empty()) fail("--data-dir needs --task (", "sst2, rte, cb, boolq, wsc, wic, multirc, copa, record, squad, drop)");
  const std::string task = a.task.empty() ? "" : canonical_task_name(a.task);
  if (!a.task.empty() && task.empty()) render_task(a.task, Json::object());  // throws, listing the tasks
  if (!a.predictions.empty() && std::filesystem::exists(a.predictions))
    fail(a.predictions, ": exists; --predictions does not overwrite files");

  // The examples: the validation split (MeZO's test set) sampled with the seed.
  std::vector<EvalExample> pool;
  std::vector<int64_t> test_ids, demo_ids;
  std::string source;
  if (task.empty()) {
    pool = read_plain_eval_file(a.data);
    source = a.data;
    test_ids = sample_subset(static_cast<int64_t>(pool.size()), a.num_test, a.seed);
    if (calibrate) fail("--calibrate needs a task's templates (--task)");
  } else {
    const TaskSplit valid = a.data.empty() ? read_task_split(task, a.data_dir, SplitKind::Validation)
                                           : read_task_file(task, a.data, /*train=*/false);
    source = valid.file;
    std::optional<TaskSplit> train;
    std::vector<uint32_t> demo_seeds;
    if (icl) {
      if (a.demo_sets != "shared" && a.demo_sets != "per-example")
        fail("--demo-sets: unknown value '", a.demo_sets, "' (shared, per-example)");
      train = read_task_split(task, a.data_dir, SplitKind::Train);
      if (a.demo_sets == "shared") demo_ids = sample_subset(static_cast<int64_t>(train->examples.size()), a.demos, a.seed);
      else demo_seeds = per_example_demo_seeds(a.seed, a.num_test);
    }
    test_ids = sample_subset(static_cast<int64_t>(valid.examples.size()), a.num_test, a.seed);
    pool.resize(valid.examples.size());
    for (std::size_t pos = 0; pos < test_ids.size(); ++pos) {
      const auto i = static_cast<std::size_t>(test_ids[pos]);
      std::vector<int64_t> ids = demo_ids;
      if (!demo_seeds.empty()) ids = sample_subset(static_cast<int64_t>(train->examples.size()), a.demos, demo_seeds[pos]);
      std::vector<const TaskRender*> demos;
      for (int64_t id : ids) demos.push_back(&train->examples[static_cast<std::size_t>(id)]);
      try {
        pool[i] = make_eval_example(task, valid.examples[i], demos, calibration);
      } catch (const Error& e) {
        fail(valid.origin[i], ": ", e.what());
      }
      pool[i].id = test_ids[pos];
      pool[i].origin = valid.origin[i];
      pool[i].demo_ids = std::move(ids);
    }
  }

  EvalSettings s;
  s.max_length = a.max_length;
  s.max_new_tokens = a.max_new_tokens;
  std::vector<EvalExample> chosen;
  for (int64_t id : test_ids) chosen.push_back(std::move(pool[static_cast<std::size_t>(id)]));
  const bool generation = chosen.front().ex.objective == Objective::Completion;
  std::string lines;
  const EvalTotals totals = evaluate_model(a.model, chosen, s, [&](const EvalExample& e, const EvalResult& r) {
    if (a.predictions.empty()) return;
    OJson p = {{"id", e.id}, {"source", e.origin}, {"prompt", e.ex.prompt}, {"candidates", candidates_json(r, calibrate)}};
    if (icl) p["demo_ids"] = e.demo_ids;
    if (calibrate) p["calibration_prompt"] = e.sfc.prompt;
    if (generation) {
      p["prediction"] = r.prediction;
      p["gold"] = e.answers;
      p["f1"] = r.f1;
      p["em"] = r.em;
    } else {
      p["prediction"] = r.predicted;
      p["gold"] = e.ex.correct;
      p["accuracy"] = r.accuracy;
    }
    if (r.truncated) p["truncated"] = true;
    lines += p.dump() + "\n";
  });
  if (!a.predictions.empty()) write_file_atomic(a.predictions, lines);

  OJson out = {{"task", task.empty() ? std::string("custom") : task},
               {"mode", a.mode},
               {"metric", totals.metric()},
               {"value", totals.value()},
               {"n", totals.n}};
  if (generation) out["em"] = totals.mean_em();
  out["seed"] = a.seed;
  out["num_test"] = a.num_test;
  if (icl) out["demos"] = a.demos;
  out["calibrate"] = calibrate;
  if (a.icl_sfc) out["icl_sfc"] = true;
  out["max_length"] = totals.max_length;
  out["truncated"] = totals.truncated;
  out["data"] = source;
  out["test_ids"] = test_ids;
  if (icl) out["demo_sets"] = a.demo_sets;
  if (icl && a.demo_sets == "shared") out["demo_ids"] = demo_ids;
  std::printf("%s\n", out.dump().c_str());
}
}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand("eval", "Evaluate a model on a MeZO task (zero-shot or in-context), MeZO's protocol");
  c->add_option("--model", a->model, "Hugging Face model directory (with its tokenizer)")->required();
  c->add_option("--task", a->task, "sst2, rte, cb, boolq, wsc, wic, multirc, copa, record, squad, drop");
  c->add_option("--data-dir", a->data_dir, "directory with the task's files (docs/evaluation.md)");
  c->add_option("--data", a->data, "one JSONL file: zotune's shapes, or the task's raw records with --task");
  c->add_option("--mode", a->mode, "zero-shot or icl (demonstrations from the train split)")->capture_default_str();
  c->add_option("--demos", a->demos, "demonstrations with --mode icl")->capture_default_str();
  c->add_option("--demo-sets", a->demo_sets,
                "shared: one set for all test examples (MeZO --train_set_seed); per-example: one per test example (MeZO's icl.sh)")
      ->capture_default_str();
  c->add_option("--num-test", a->num_test, "test examples sampled from the validation split")->capture_default_str();
  c->add_option("--seed", a->seed, "sampling seed (MeZO's train_set_seed)")->capture_default_str();
  c->add_option("--predictions", a->predictions, "write one JSON line per example to this new file");
  c->add_flag("--calibrate", a->calibrate, "SFC calibration: subtract the candidate's log-likelihood after the template's calibration prompt");
  c->add_flag("--icl-sfc", a->icl_sfc,
              "with --mode icl: calibrate (as --calibrate) after the demonstrations and the calibration prompt (MeZO --icl_sfc)");
  c->add_option("--max-length", a->max_length, "tokens per sequence (default: the model's context, at most 2048)");
  c->add_option("--max-new-tokens", a->max_new_tokens, "generation tasks: tokens to generate at most")->capture_default_str();
  c->add_option("--threads", a->threads, "compute threads (default: all cores)");
  c->callback([a] { set_action([a] { run_eval(*a); }); });
}

}  // namespace zotune::cli
