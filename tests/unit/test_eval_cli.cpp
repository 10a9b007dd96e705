// zotune eval end to end on a tiny GPT-2 with the real GPT-2 tokenizer and the
// fixture files of tests/data/eval/: the summary line, the --predictions
// lines, metrics recomputed from the predictions, and candidate scores checked
// against `zotune forward` logits (an independent path through the model).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "data/eval_protocol.h"
#include "data/metrics.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "test_tokenizer_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;
using testing::quote;
using testing::run_zotune;
using testing::TempDir;

fs::path eval_data() { return testing::source_dir() / "tests" / "data" / "eval"; }

constexpr const char* kTasks[] = {"sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"};
// The task's fixture in its official format (GLUE TSV, SuperGLUE JSONL, SQuAD / DROP JSON).
fs::path official_dir(const std::string& task) {
  if (task == "sst2") return eval_data() / "glue" / "sst2";
  if (task == "squad" || task == "drop") return eval_data() / task;
  return eval_data() / "superglue" / task;
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_zotune("init --arch gpt2 --preset tiny --seed 3 --tokenizer " +
                              quote(test::tokenizer_data("gpt2")) + " --out " + quote(model()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path model() { return dir_->path() / "model"; }
  static fs::path tmp(const std::string& name) { return dir_->path() / name; }

  static Json run_eval(const std::string& args) { return run_eval_on(model(), args); }
  static Json run_eval_on(const fs::path& m, const std::string& args) {
    const auto r = run_zotune("eval --model " + quote(m) + " --threads 1 " + args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (r.exit_code != 0) return Json::object();
    return Json::parse(r.output.substr(0, r.output.find('\n')));
  }
  static std::string bytes_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    EXPECT_TRUE(in.good()) << p;
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  // `zotune replay` of the first `steps` updates of run `out` (all if < 0) into a new directory.
  static fs::path replayed(const fs::path& out, int64_t steps, const std::string& name) {
    const fs::path to = tmp(name);
    const auto r = run_zotune("replay --model " + quote(model()) + " --log " + quote(out / "updates.jsonl") + " --out " +
                              quote(to) + (steps >= 0 ? " --steps " + std::to_string(steps) : std::string()));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return to;
  }
  static std::vector<Json> read_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<Json> out;
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(Json::parse(line));
    return out;
  }

  // Mean log-likelihood of `candidate` after `prompt` from `zotune forward`'s logits.
  static double forward_score(const std::string& prompt, const std::string& candidate, const std::string& tag) {
    const Tokenizer tok = Tokenizer::load(model());
    std::vector<int32_t> ids = tok.encode(prompt, true);
    const auto from = static_cast<int64_t>(ids.size());
    for (int32_t id : tok.encode(candidate, false)) ids.push_back(id);
    const fs::path in = tmp(tag + ".json"), out = tmp(tag + ".safetensors");
    std::ofstream(in) << Json{{"input_ids", {ids}}}.dump();
    const auto r = run_zotune("forward --threads 1 --model " + quote(model()) + " --input " + quote(in) + " --output " + quote(out));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const SafetensorsFile f(out);
    const TensorView logits = f.view("logits");
    const int64_t V = logits.shape[2];
    double sum = 0;
    for (auto t = from; t < static_cast<int64_t>(ids.size()); ++t) {
      const float* row = logits.f32() + (t - 1) * V;
      double top = row[0], z = 0;
      for (int64_t v = 0; v < V; ++v) top = std::max<double>(top, row[v]);
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - top);
      sum += row[ids[static_cast<std::size_t>(t)]] - top - std::log(z);
    }
    return sum / static_cast<double>(static_cast<int64_t>(ids.size()) - from);
  }

  static TempDir* dir_;
};
TempDir* EvalCli::dir_ = nullptr;

TEST_F(EvalCli, ClassificationZeroShotWithPredictions) {
  const fs::path pred = tmp("sst2.jsonl");
  const Json s = run_eval("--task SST-2 --data-dir " + quote(eval_data() / "glue" / "sst2") + " --predictions " + quote(pred));
  EXPECT_EQ(s["task"], "sst2");
  EXPECT_EQ(s["mode"], "zero-shot");
  EXPECT_EQ(s["metric"], "accuracy");
  EXPECT_EQ(s["n"], 5);
  EXPECT_EQ(s["seed"], 0);
  EXPECT_EQ(s["test_ids"].get<std::vector<int64_t>>(), numpy_permutation(0, 5));  // MeZO's sample of the 5
  const std::vector<Json> lines = read_lines(pred);
  ASSERT_EQ(lines.size(), 5u);
  double correct = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Json& p = lines[i];
    EXPECT_EQ(p["id"], s["test_ids"][i]);
    ASSERT_EQ(p["candidates"].size(), 2u);
    EXPECT_EQ(p["candidates"][0]["text"], " terrible");
    EXPECT_EQ(p["candidates"][1]["text"], " great");
    EXPECT_TRUE(p["prompt"].get<std::string>().ends_with(" It was"));
    // The prediction is the argmax of the scores; accuracy is whether it is gold.
    const double s0 = p["candidates"][0]["score"], s1 = p["candidates"][1]["score"];
    EXPECT_EQ(p["prediction"], s1 > s0 ? 1 : 0);
    const auto gold = p["gold"].get<std::vector<int32_t>>();
    const double right = std::find(gold.begin(), gold.end(), p["prediction"].get<int32_t>()) != gold.end() ? 1 : 0;
    EXPECT_EQ(p["accuracy"].get<double>(), right);
    correct += right;
  }
  EXPECT_DOUBLE_EQ(s["value"].get<double>(), correct / 5);
  // Scores equal the ones from zotune forward's logits.
  for (int k = 0; k < 2; ++k) {
    const std::string text = lines[0]["candidates"][k]["text"];
    EXPECT_NEAR(lines[0]["candidates"][k]["score"].get<double>(),
                forward_score(lines[0]["prompt"], text, "sst2_" + std::to_string(k)), 1e-5);
  }
  // Same files from the Hugging Face export: the same result.
  const Json hf = run_eval("--task sst2 --data-dir " + quote(eval_data() / "hf" / "sst2"));
  EXPECT_EQ(hf["value"], s["value"]);
  EXPECT_EQ(hf["test_ids"], s["test_ids"]);
  // --predictions never overwrites.
  const auto again = run_zotune("eval --model " + quote(model()) + " --task sst2 --data-dir " +
                                quote(eval_data() / "glue" / "sst2") + " --predictions " + quote(pred));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("does not overwrite"), std::string::npos) << again.output;
}

TEST_F(EvalCli, MultipleChoiceInContextAndCalibrated) {
  const fs::path pred = tmp("copa.jsonl");
  const Json s = run_eval("--task copa --data-dir " + quote(eval_data() / "superglue" / "copa") +
                          " --mode icl --demos 2 --seed 4 --predictions " + quote(pred));
  EXPECT_EQ(s["mode"], "icl");
  EXPECT_EQ(s["demos"], 2);
  EXPECT_EQ(s["demo_ids"].get<std::vector<int64_t>>(), sample_subset(6, 2, 4));
  EXPECT_EQ(s["n"], 3);
  const std::vector<Json> lines = read_lines(pred);
  ASSERT_EQ(lines.size(), 3u);
  // Each prompt: two demonstrations, blank lines between, then the test premise.
  const std::string prompt = lines[0]["prompt"];
  EXPECT_EQ(std::count(prompt.begin(), prompt.end(), '\n'), 4) << prompt;
  EXPECT_NEAR(lines[0]["candidates"][1]["score"].get<double>(),
              forward_score(prompt, lines[0]["candidates"][1]["text"], "copa"), 1e-5);

  // MeZO's icl.sh: one demonstration set per test example.
  const fs::path per = tmp("copa_per.jsonl");
  const Json pe = run_eval("--task copa --data-dir " + quote(eval_data() / "hf" / "copa") +
                           " --mode icl --demos 2 --demo-sets per-example --predictions " + quote(per));
  EXPECT_EQ(pe["demo_sets"], "per-example");
  EXPECT_FALSE(pe.contains("demo_ids"));
  const std::vector<Json> per_lines = read_lines(per);
  ASSERT_EQ(per_lines.size(), 3u);
  const std::vector<uint32_t> seeds = per_example_demo_seeds(0, 1000);
  for (std::size_t i = 0; i < per_lines.size(); ++i)
    EXPECT_EQ(per_lines[i]["demo_ids"].get<std::vector<int64_t>>(), sample_subset(6, 2, seeds[i]));

  // SFC: score = sum of log-likelihoods - the sum after the calibration prompt.
  const fs::path cal = tmp("sst2_sfc.jsonl");
  const Json c = run_eval("--task sst2 --data-dir " + quote(eval_data() / "hf" / "sst2") + " --calibrate --num-test 2 --predictions " + quote(cal));
  EXPECT_EQ(c["calibrate"], true);
  EXPECT_EQ(c["n"], 2);
  const Json p = read_lines(cal)[0];
  const Json& cand = p["candidates"][1];
  const int64_t tokens = cand["tokens"];
  const double mean = forward_score(p["prompt"], cand["text"], "sfc_main");
  const double calib = forward_score("It was", cand["text"], "sfc_cal");  // the SST-2 calibration prompt
  EXPECT_NEAR(cand["calibration"].get<double>(), calib * static_cast<double>(tokens), 1e-5);
  EXPECT_NEAR(cand["score"].get<double>(), mean * static_cast<double>(tokens) - calib * static_cast<double>(tokens), 1e-5);

  // --icl-sfc (MeZO --icl_sfc): the calibration prompt follows the demonstrations.
  const fs::path icl_cal = tmp("sst2_icl_sfc.jsonl");
  const Json ic = run_eval("--task sst2 --data-dir " + quote(eval_data() / "hf" / "sst2") +
                           " --mode icl --demos 2 --seed 5 --icl-sfc --num-test 2 --predictions " + quote(icl_cal));
  EXPECT_EQ(ic["calibrate"], true);
  EXPECT_EQ(ic["icl_sfc"], true);
  const Json q = read_lines(icl_cal)[0];
  const std::string q_prompt = q["prompt"], q_cal = q["calibration_prompt"];
  const std::string demos = q_prompt.substr(0, q_prompt.rfind("\n\n") + 2);
  EXPECT_EQ(std::count(demos.begin(), demos.end(), '\n'), 4) << q_prompt;
  EXPECT_EQ(q_cal, demos + "It was");
  const Json& qc = q["candidates"][0];
  const auto q_tokens = static_cast<double>(qc["tokens"].get<int64_t>());
  const double q_calib = forward_score(q_cal, qc["text"], "icl_sfc_cal");
  EXPECT_NEAR(qc["calibration"].get<double>(), q_calib * q_tokens, 1e-5);
  EXPECT_NEAR(qc["score"].get<double>(), (forward_score(q_prompt, qc["text"], "icl_sfc_main") - q_calib) * q_tokens, 1e-5);
  const auto bad = run_zotune("eval --model " + quote(model()) + " --task sst2 --data-dir " + quote(eval_data() / "hf" / "sst2") + " --icl-sfc");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("--icl-sfc puts the demonstrations before the calibration prompt: it needs --mode icl"), std::string::npos) << bad.output;
}

TEST_F(EvalCli, RecordCountsAnyCorrectEntity) {
  const fs::path pred = tmp("record.jsonl");
  const Json s = run_eval("--task ReCoRD --data-dir " + quote(eval_data() / "superglue" / "record") + " --predictions " + quote(pred));
  EXPECT_EQ(s["n"], 2);
  double correct = 0;
  for (const Json& p : read_lines(pred)) {
    EXPECT_EQ(p["candidates"].size(), 6u);
    const auto gold = p["gold"].get<std::vector<int32_t>>();
    correct += std::find(gold.begin(), gold.end(), p["prediction"].get<int32_t>()) != gold.end() ? 1 : 0;
    if (p["source"].get<std::string>().find("qas[1]") != std::string::npos) {
      EXPECT_EQ(gold, (std::vector<int32_t>{3, 5}));
    }
  }
  EXPECT_DOUBLE_EQ(s["value"].get<double>(), correct / 2);
}

TEST_F(EvalCli, GenerationF1AndExactMatch) {
  const fs::path pred = tmp("squad.jsonl");
  const Json s = run_eval("--task squad --data-dir " + quote(eval_data() / "squad") + " --max-new-tokens 8 --predictions " + quote(pred));
  EXPECT_EQ(s["metric"], "f1");
  EXPECT_EQ(s["n"], 2);
  ASSERT_TRUE(s.contains("em"));
  double f1 = 0, em = 0;
  for (const Json& p : read_lines(pred)) {
    const std::string prediction = p["prediction"];
    const auto gold = p["gold"].get<std::vector<std::string>>();
    EXPECT_FALSE(gold.empty());
    ASSERT_EQ(p["candidates"].size(), 1u);
    const std::string text = p["candidates"][0]["text"];
    EXPECT_EQ(prediction.find('\n'), std::string::npos);
    EXPECT_NE(text.find(prediction), std::string::npos);
    EXPECT_DOUBLE_EQ(p["f1"].get<double>(), max_f1(prediction, gold));
    EXPECT_DOUBLE_EQ(p["em"].get<double>(), max_exact_match(prediction, gold));
    EXPECT_TRUE(p["prompt"].get<std::string>().ends_with("\nAnswer:"));
    if (p["candidates"][0]["tokens"].get<int64_t>() > 0) {
      EXPECT_NEAR(p["candidates"][0]["score"].get<double>(), forward_score(p["prompt"], text, "squad"), 1e-5);
    }
    f1 += p["f1"].get<double>();
    em += p["em"].get<double>();
  }
  EXPECT_DOUBLE_EQ(s["value"].get<double>(), f1 / 2);
  EXPECT_DOUBLE_EQ(s["em"].get<double>(), em / 2);
  // DROP in-context from its official JSON files.
  const Json d = run_eval("--task drop --data-dir " + quote(eval_data() / "drop") + " --mode icl --demos 1 --max-new-tokens 4");
  EXPECT_EQ(d["metric"], "f1");
  EXPECT_EQ(d["n"], 3);
  EXPECT_EQ(d["demo_ids"].size(), 1u);
}

// zotune train with MeZO's sampled sets: dev evaluations pick best/, the test
// metric of best/ is appended to metrics.jsonl and equals zotune eval's.
TEST_F(EvalCli, TrainOnMezoSampleSelectsBestDevModel) {
  const fs::path out = tmp("run");
  const auto r = run_zotune("train --model " + quote(model()) + " --task rte --data-dir " + quote(eval_data() / "hf" / "rte") +
                            " --num-train 2 --num-dev 2 --num-test 3 --out " + quote(out) +
                            " --steps 4 --batch-size 2 --lr 1e-2 --eps 1e-3 --seed 1 --max-length 128 --eval-every 2"
                            " --select-best --threads 1 --progress log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::size_t key = r.output.find("\"type\":\"test\"");
  ASSERT_NE(key, std::string::npos) << r.output;
  const std::size_t at = r.output.rfind('\n', key) + 1;
  const Json shown = Json::parse(r.output.substr(at, r.output.find('\n', at) - at));
  EXPECT_EQ(shown["model"], "best");
  EXPECT_EQ(shown["metric"], "accuracy");
  EXPECT_EQ(shown["n"], 3);
  const MezoSample want = mezo_sample(6, 4, 2, 2, 3, 1);
  EXPECT_EQ(shown["test_ids"].get<std::vector<int64_t>>(), want.test);

  std::vector<Json> evals;
  Json test;
  for (const Json& j : read_lines(out / "metrics.jsonl")) {
    if (j["type"] == "eval") evals.push_back(j);
    if (j["type"] == "test") test = j;
  }
  ASSERT_EQ(evals.size(), 3u);  // steps 0, 2, 4
  EXPECT_EQ(test["train_ids"].get<std::vector<int64_t>>(), want.train);
  EXPECT_EQ(test["dev_ids"].get<std::vector<int64_t>>(), want.dev);
  // best_step: the first evaluation with the highest dev accuracy.
  double top = -1;
  int64_t first_top = -1;
  for (const Json& e : evals) {
    EXPECT_EQ(e["examples"], 2);
    if (e["accuracy"].get<double>() > top) {
      top = e["accuracy"];
      first_top = e["step"];
    }
  }
  EXPECT_EQ(test["best_step"], first_top);
  EXPECT_TRUE(fs::exists(out / "best" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "best" / "tokenizer.json"));
  // The output model is the best step's: replaying the log up to it gives its
  // bytes; last/ holds the last step's, the full replay.
  const Json state = Json::parse(bytes_of(out / "trainer_state.json"));
  EXPECT_EQ(state["best_step"], first_top);
  EXPECT_EQ(state["last_model"], "last");
  EXPECT_EQ(state["weights"], "last");
  const std::string top_bytes = bytes_of(out / "model.safetensors");
  EXPECT_EQ(top_bytes, bytes_of(out / "best" / "model.safetensors"));
  EXPECT_EQ(top_bytes, bytes_of(replayed(out, first_top, "rte_replay_best") / "model.safetensors"));
  EXPECT_EQ(bytes_of(out / "last" / "model.safetensors"), bytes_of(replayed(out, -1, "rte_replay_all") / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "last" / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  const Json direct = run_eval_on(out / "best", "--task rte --data-dir " + quote(eval_data() / "hf" / "rte") + " --num-test 3 --seed 1");
  EXPECT_EQ(direct["value"], test["value"]);
  EXPECT_EQ(direct["test_ids"], test["test_ids"]);
}

// SQuAD with model selection: every dev evaluation generates greedily through
// the weights of that step, in every tier, and selects by F1. The dev records'
// gold answers are set to a model's own greedy answers, so the dev F1 of that
// model is known exactly (and is not 0): first the base model's (the step-0
// evaluation), then the last step's of a first run (the dev answers do not
// change training: the same run again ends on the same weights).
TEST_F(EvalCli, TrainGenerationSelectsByDevF1InEveryTier) {
  std::vector<Json> records;
  {
    std::ifstream in(eval_data() / "hf" / "squad" / "train.jsonl");
    std::string line;
    while (std::getline(in, line)) records.push_back(Json::parse(line));
  }
  ASSERT_EQ(records.size(), 3u);
  const MezoSample sample = mezo_sample(3, 2, 1, 2, 2, 0);
  const fs::path dev_file = tmp("squad_dev.jsonl");
  // The greedy answers of model `m` to every train record.
  const auto answers_of = [&](const fs::path& m, const std::string& tag) {
    const fs::path pred = tmp("squad_answers_" + tag + ".jsonl");
    const Json r = run_eval_on(m, "--task squad --data " + quote(eval_data() / "hf" / "squad" / "train.jsonl") +
                                      " --num-test 3 --predictions " + quote(pred));
    EXPECT_EQ(r["n"], 3);
    std::vector<std::string> out(3);
    for (const Json& p : read_lines(pred)) out.at(p["id"].get<std::size_t>()) = p["prediction"];
    return out;
  };
  // A data directory whose dev records' answers are `gold`; returns the dev F1 they give to the model that wrote them.
  const auto data_with = [&](const std::vector<std::string>& gold, const std::string& tag) {
    const fs::path dir = tmp("squad_" + tag);
    fs::create_directories(dir);
    fs::copy_file(eval_data() / "hf" / "squad" / "validation.jsonl", dir / "validation.jsonl");
    std::vector<Json> recs = records;
    double f1 = 0;
    for (int64_t id : sample.dev) {
      const auto i = static_cast<std::size_t>(id);
      recs[i]["answers"] = {{"text", {gold[i]}}, {"answer_start", {0}}};
      f1 += max_f1(gold[i], std::vector<std::string>{gold[i]}) / 2;
    }
    std::ofstream train(dir / "train.jsonl"), dev(dev_file);
    for (const Json& r : recs) train << r.dump() << "\n";
    for (int64_t id : sample.dev) dev << recs[static_cast<std::size_t>(id)].dump() << "\n";
    return std::pair{dir, f1};
  };
  // The dev set scored by `zotune eval` on a model directory.
  const auto dev_f1 = [&](const fs::path& m) {
    return run_eval_on(m, "--task squad --data " + quote(dev_file) + " --num-test 2")["value"].get<double>();
  };
  const auto train = [&](const fs::path& data, const std::string& tier, const std::string& tag) {
    const fs::path out = tmp("run_squad_" + tag);
    const auto g = run_zotune("train --model " + quote(model()) + " --task squad --data-dir " + quote(data) +
                              " --num-train 1 --num-dev 2 --num-test 2 --out " + quote(out) + " " + tier +
                              " --steps 3 --eval-every 1 --batch-size 1 --lr 1e-2 --eps 1e-2 --max-length 128"
                              " --select-best --threads 1 --progress log");
    EXPECT_EQ(g.exit_code, 0) << g.output;
    std::vector<Json> evals;
    for (const Json& j : read_lines(out / "metrics.jsonl"))
      if (j["type"] == "eval") evals.push_back(j);
    return std::pair{out, evals};
  };

  const auto [base_data, base_f1] = data_with(answers_of(model(), "base"), "base");
  ASSERT_GT(base_f1, 0.0);
  const auto [first, first_evals] = train(base_data, "", "first");
  ASSERT_EQ(first_evals.size(), 4u);
  EXPECT_DOUBLE_EQ(first_evals[0]["f1"].get<double>(), base_f1);  // step 0: the base model's answers

  const auto [last_data, last_f1] = data_with(answers_of(first / "last", "last"), "last");
  ASSERT_GT(last_f1, 0.0);
  int n = 0;
  for (const std::string tier : {"--offload none", "--offload ram --storage-dtype bf16", "--offload disk"}) {
    SCOPED_TRACE(tier);
    const auto [out, evals] = train(last_data, tier, std::to_string(n++));
    ASSERT_EQ(evals.size(), 4u);  // steps 0..3
    double top = -1;
    int64_t best_step = -1;
    for (const Json& e : evals) {
      EXPECT_EQ(e["metric"], "f1");
      EXPECT_EQ(e["generated"], 2);
      ASSERT_TRUE(e.contains("em"));
      if (e["f1"].get<double>() > top) {
        top = e["f1"];
        best_step = e["step"];
      }
      EXPECT_EQ(e.value("best", false), e["step"] == best_step) << e.dump();
    }
    // fp32 tiers run the first run's trajectory: its last step answers as the gold.
    if (tier != "--offload ram --storage-dtype bf16") {
      EXPECT_DOUBLE_EQ(evals.back()["f1"].get<double>(), last_f1);
    }
    // The last evaluation is the last step's model's, the best one the output model's.
    EXPECT_DOUBLE_EQ(evals.back()["f1"].get<double>(), dev_f1(out / "last"));
    EXPECT_DOUBLE_EQ(top, dev_f1(out));
    EXPECT_EQ(bytes_of(out / "model.safetensors"), bytes_of(out / "best" / "model.safetensors"));
    const Json state = Json::parse(bytes_of(out / "trainer_state.json"));
    EXPECT_EQ(state["best_step"], best_step);
    const Json test = read_lines(out / "metrics.jsonl").back();
    EXPECT_EQ(test["type"], "test");
    EXPECT_EQ(test["metric"], "f1");
    EXPECT_EQ(test["best_step"], best_step);
    EXPECT_TRUE(test.contains("em"));
    EXPECT_EQ(test["n"], 2);
    EXPECT_NE(bytes_of(out / "f1.svg").find("eval F1"), std::string::npos);
    if (tier == "--offload none") {
      EXPECT_EQ(bytes_of(out / "model.safetensors"),
                bytes_of(replayed(out, best_step, "squad_replay_best") / "model.safetensors"));
      EXPECT_EQ(bytes_of(out / "last" / "model.safetensors"),
                bytes_of(replayed(out, -1, "squad_replay_all") / "model.safetensors"));
    }
  }
}

// Every task: zero-shot from its official files, in-context from the Hugging
// Face export (the same examples, so the same test ids). Fine-tuning on every
// task: EveryTaskTrainsWithModelSelection.
TEST_F(EvalCli, EveryTaskEveryModeEndToEnd) {
  for (const std::string task : kTasks) {
    SCOPED_TRACE(task);
    const fs::path official = official_dir(task);
    const bool generation = task == "squad" || task == "drop";
    const std::string gen = generation ? " --max-new-tokens 3" : "";
    const Json z = run_eval("--task " + task + " --data-dir " + quote(official) + " --num-test 2" + gen);
    EXPECT_EQ(z["metric"], generation ? "f1" : "accuracy");
    EXPECT_EQ(z["n"], 2);
    const Json i = run_eval("--task " + task + " --data-dir " + quote(eval_data() / "hf" / task) +
                            " --mode icl --demos 2 --num-test 2" + gen);
    EXPECT_EQ(i["mode"], "icl");
    EXPECT_EQ(i["test_ids"], z["test_ids"]);
    EXPECT_EQ(i["demo_ids"].size(), 2u);
  }
}

// Every task: `train --task --data-dir --select-best` end to end from its
// official files (one step, dev evaluations at steps 0 and 1, the test metric
// of the output model), the output model and last/ in place.
TEST_F(EvalCli, EveryTaskTrainsWithModelSelection) {
  for (const std::string task : kTasks) {
    SCOPED_TRACE(task);
    const fs::path official = official_dir(task);
    const bool generation = task == "squad" || task == "drop";
    const fs::path out = tmp("every_" + task);
    const auto r = run_zotune("train --model " + quote(model()) + " --task " + task + " --data-dir " + quote(official) +
                              " --num-train 1 --num-dev 1 --num-test 1 --out " + quote(out) +
                              " --steps 1 --batch-size 1 --lr 1e-3 --eps 1e-3 --max-length 256 --select-best --threads 1 --progress log");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::vector<Json> evals;
    Json test;
    for (const Json& j : read_lines(out / "metrics.jsonl")) {
      if (j["type"] == "eval") evals.push_back(j);
      if (j["type"] == "test") test = j;
    }
    ASSERT_EQ(evals.size(), 2u);
    for (const Json& e : evals) EXPECT_EQ(e["metric"], generation ? "f1" : "accuracy");
    EXPECT_EQ(test["metric"], generation ? "f1" : "accuracy");
    EXPECT_EQ(test["n"], 1);
    EXPECT_EQ(test["model"], "best");
    EXPECT_EQ(bytes_of(out / "model.safetensors"), bytes_of(out / "best" / "model.safetensors"));
    EXPECT_TRUE(fs::exists(out / "last" / "model.safetensors"));
    EXPECT_TRUE(fs::exists(out / (generation ? "f1.svg" : "accuracy.svg")));
  }
}

// The Python of docs/evaluation.md recomputes the reported metrics from --predictions.
TEST_F(EvalCli, DocsPythonRecomputesTheMetricsFromPredictions) {
  const fs::path driver = tmp("recompute.py");
  std::ofstream(driver) << "import json, sys\n"
                           "doc = open(sys.argv[1], encoding='utf-8').read()\n"
                           "src = doc.split('Recomputing the reported metrics:')[1].split('```python\\n')[1].split('```')[0]\n"
                           "src = src.replace('\"pred.jsonl\"', repr(sys.argv[2]))\n"
                           "if sys.argv[3] == 'classification':\n"
                           "    src = src.split('# generation')[0]\n"
                           "env = {}\n"
                           "exec(src, env)\n"
                           "print(json.dumps({'value': env['acc'] if sys.argv[3] == 'classification' else env['f1_value'],\n"
                           "                  'em': env.get('em_value')}))\n";
  const auto recompute = [&](const fs::path& pred, const std::string& kind) {
    const auto cmd = "python3 " + quote(driver) + " " + quote(testing::source_dir() / "docs" / "evaluation.md") + " " +
                     quote(pred) + " " + kind + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    std::size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(p ? pclose(p) : -1, 0) << out;
    return Json::parse(out, nullptr, false);
  };
  struct Case {
    std::string args, kind;
  };
  const Case cases[] = {
      {"--task sst2 --data-dir " + quote(eval_data() / "glue" / "sst2"), "classification"},
      {"--task copa --data-dir " + quote(eval_data() / "hf" / "copa") + " --mode icl --demos 2 --calibrate", "classification"},
      {"--task record --data-dir " + quote(eval_data() / "superglue" / "record"), "classification"},
      {"--task squad --data-dir " + quote(eval_data() / "squad") + " --max-new-tokens 8", "generation"},
      {"--task drop --data-dir " + quote(eval_data() / "drop") + " --max-new-tokens 4", "generation"},
  };
  int k = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const fs::path pred = tmp("doc_pred_" + std::to_string(k++) + ".jsonl");
    const Json s = run_eval(c.args + " --predictions " + quote(pred));
    const Json r = recompute(pred, c.kind);
    ASSERT_TRUE(r.is_object());
    EXPECT_NEAR(r["value"].get<double>(), s["value"].get<double>(), 1e-12);
    if (c.kind == "generation") {
      EXPECT_NEAR(r["em"].get<double>(), s["em"].get<double>(), 1e-12);
    }
  }
}

TEST_F(EvalCli, OwnShapesAndErrors) {
  const fs::path data = tmp("own.jsonl");
  std::ofstream(data) << "{\"prompt\": \"The sky is\", \"candidates\": [\" blue\", \" green\"], \"label\": 0}\n"
                         "{\"prompt\": \"Grass is\", \"candidates\": [\" blue\", \" green\"], \"label\": 1}\n";
  const Json s = run_eval("--data " + quote(data) + " --predictions " + quote(tmp("own_pred.jsonl")));
  EXPECT_EQ(s["task"], "custom");
  EXPECT_EQ(s["n"], 2);
  const Json p = read_lines(tmp("own_pred.jsonl"))[0];
  EXPECT_NEAR(p["candidates"][0]["score"].get<double>(), forward_score(p["prompt"], " blue", "own"), 1e-5);

  const auto fails = [&](const std::string& args, const std::string& needle) {
    const auto r = run_zotune("eval --model " + quote(model()) + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
  };
  fails("--data " + quote(data) + " --mode icl", "--mode icl samples demonstrations from the train split");
  fails("--task rte --data-dir " + quote(tmp("nowhere")), "no validation split for task rte");
  fails("--task rte --data-dir " + quote(eval_data() / "hf" / "rte") + " --mode few", "--mode: unknown value 'few'");
  fails("--task squad --data-dir " + quote(eval_data() / "squad") + " --calibrate", "calibration (SFC) is for classification");
  fails("--task sst2 --data-dir " + quote(eval_data() / "hf" / "sst2") + " --max-length 4096", "exceeds the model's context of 256");
}

}  // namespace
}  // namespace zotune
