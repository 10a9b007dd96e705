// `zotune train` end to end: learning with a real margin, bit-identical resume
// (from a finished run, a checkpoint and after SIGINT) and replay, outputs in
// Hugging Face layout, the input directory untouched, clear errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "child_run.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "test_util.h"


namespace zotune {
namespace {

namespace fs = std::filesystem;
using testing::quote;
using testing::run_zotune;
using testing::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Pre-tokenized completion data: random prompts, the completion is always token 77.
void write_fixed_word_data(const fs::path& p, int n, uint32_t seed) {
  std::ofstream f(p);
  uint32_t s = seed;
  auto next = [&] { s = s * 1664525u + 1013904223u; return s >> 8; };
  for (int i = 0; i < n; ++i) {
    f << "{\"prompt_ids\": [";
    const int len = 3 + static_cast<int>(next() % 6);
    for (int t = 0; t < len; ++t) f << (t ? ", " : "") << 3 + next() % 130;
    f << "], \"completion_ids\": [77]}\n";
  }
}

std::string train_cmd(const fs::path& model, const fs::path& data, const fs::path& out, int steps,
                      const std::string& extra = "") {
  return "train --model " + quote(model) + " --data " + quote(data) + " --out " + quote(out) + " --steps " +
         std::to_string(steps) + " --batch-size 8 --lr 1e-3 --eps 1e-3 --weight-decay 0.01 --seed 3 --progress log " +
         extra;
}

// Starts `zotune train` on a never-ending run in the background; returns its pid
// once it has logged `records` metrics records.

using testing::metrics;

// The step "continuing the disk working copy at step N" names (-1: not said).
int continued_at(const std::string& output) {
  const std::string key = "continuing the disk working copy at step ";
  const auto at = output.find(key);
  return at == std::string::npos ? -1 : std::stoi(output.substr(at + key.size()));
}

// `train` for a million steps (stopped by a signal), 8 examples a step.
std::vector<std::string> long_run_args(const fs::path& model, const fs::path& data, const fs::path& out,
                                       std::vector<std::string> extra) {
  std::vector<std::string> args = {"train", "--model", model.string(), "--data", data.string(), "--out",
                                   out.string(), "--steps", "1000000", "--batch-size", "8", "--lr", "1e-3",
                                   "--eps", "1e-3", "--weight-decay", "0.01", "--seed", "3", "--progress", "log"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(Train, LearnsAFixedLabelWordWithARealMargin) {
  TempDir tmp;
  const fs::path model = testing::golden_dir() / "gpt2";
  write_fixed_word_data(tmp / "d.jsonl", 64, 1);
  auto r = run_zotune(train_cmd(model, tmp / "d.jsonl", tmp / "run", 200, "--eval " + quote(tmp / "d.jsonl")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<double> evals;
  for (auto& m : metrics(tmp / "run"))
    if (m["type"] == "eval") evals.push_back(m["loss"].get<double>());
  ASSERT_EQ(evals.size(), 2u);
  // ln(151) = 5.0 is chance; the reference point is the model's own start.
  EXPECT_GT(evals[0], 4.0);
  EXPECT_LT(evals[1], 0.5 * evals[0]) << "eval loss " << evals[0] << " -> " << evals[1];
}

TEST(Train, OutputIsAHuggingFaceCheckpointAndInputIsUntouched) {
  TempDir tmp;
  const fs::path src = testing::golden_dir() / "qwen3_bf16";
  fs::copy(src, tmp / "model");
  std::map<std::string, std::string> before;
  for (auto& e : fs::directory_iterator(tmp / "model")) before[e.path().filename()] = slurp(e.path());
  write_fixed_word_data(tmp / "d.jsonl", 16, 2);
  auto r = run_zotune(train_cmd(tmp / "model", tmp / "d.jsonl", tmp / "run", 5));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<std::string, std::string> after;
  for (auto& e : fs::directory_iterator(tmp / "model")) after[e.path().filename()] = slurp(e.path());
  EXPECT_EQ(before, after) << "the input model directory changed";

  for (const char* f : {"config.json", "model.safetensors", "metrics.jsonl", "updates.jsonl", "loss.svg", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(tmp / "run" / f)) << f;
  SafetensorsFile out(tmp / "run" / "model.safetensors");
  for (auto& t : out.tensors()) EXPECT_EQ(t.dtype, DType::BF16) << t.name << ": saved in the input dtype";
  EXPECT_EQ(read_json_file(tmp / "run" / "config.json")["torch_dtype"], "bfloat16");
  auto ins = run_zotune("inspect --json --model " + quote(tmp / "run"));
  EXPECT_EQ(ins.exit_code, 0) << ins.output;
  auto m = metrics(tmp / "run");
  int train_records = 0;
  for (auto& j : m) train_records += j["type"] == "train";
  EXPECT_EQ(train_records, 5);
  EXPECT_NE(slurp(tmp / "run" / "loss.svg").find("<svg"), std::string::npos);

  // Writing into a directory that holds a run (or the user's files) is refused.
  auto again = run_zotune(train_cmd(tmp / "model", tmp / "d.jsonl", tmp / "run", 5));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("already holds a training run"), std::string::npos) << again.output;
  auto into_input = run_zotune(train_cmd(tmp / "model", tmp / "d.jsonl", tmp / "model", 5));
  EXPECT_EQ(into_input.exit_code, 1);
  EXPECT_NE(into_input.output.find("input model directory"), std::string::npos) << into_input.output;
}

TEST(Train, ResumeAndReplayAreBitIdentical) {
  TempDir tmp;
  const fs::path model = testing::golden_dir() / "llama";
  write_fixed_word_data(tmp / "d.jsonl", 40, 3);
  const fs::path d = tmp / "d.jsonl";
  ASSERT_EQ(run_zotune(train_cmd(model, d, tmp / "full", 9, "--save-every 3 --keep-checkpoints 3")).exit_code, 0);
  const std::string want = slurp(tmp / "full" / "model.safetensors");
  ASSERT_FALSE(want.empty());

  // A finished shorter run, continued.
  ASSERT_EQ(run_zotune(train_cmd(model, d, tmp / "part", 4)).exit_code, 0);
  auto r = run_zotune(train_cmd(model, d, tmp / "part", 9, "--resume " + quote(tmp / "part")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(tmp / "part" / "model.safetensors"), want) << "resume from a finished run differs";
  int train_records = 0;
  for (auto& j : metrics(tmp / "part")) train_records += j["type"] == "train";
  EXPECT_EQ(train_records, 9);

  // From a checkpoint directory into a new output.
  ASSERT_TRUE(fs::exists(tmp / "full" / "checkpoint-000006"));
  r = run_zotune(train_cmd(model, d, tmp / "from_ckpt", 9, "--resume " + quote(tmp / "full" / "checkpoint-000006")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(tmp / "from_ckpt" / "model.safetensors"), want) << "resume from a checkpoint differs";

  // Replay of the update log.
  r = run_zotune("replay --model " + quote(model) + " --log " + quote(tmp / "full" / "updates.jsonl") + " --out " +
                 quote(tmp / "replayed"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(tmp / "replayed" / "model.safetensors"), want) << "replay differs";

  // Options that would change the run are refused on resume.
  r = run_zotune("train --model " + quote(model) + " --data " + quote(d) + " --out " + quote(tmp / "part") +
                 " --steps 12 --batch-size 8 --lr 2e-3 --eps 1e-3 --weight-decay 0.01 --seed 3 --resume " + quote(tmp / "part"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("lr"), std::string::npos) << r.output;
}

TEST(Train, SigintWritesACheckpointAndResumeContinuesExactly) {
  TempDir tmp;
  const fs::path model = testing::golden_dir() / "gpt2";
  write_fixed_word_data(tmp / "d.jsonl", 40, 4);
  const fs::path d = tmp / "d.jsonl";
  const auto stop = testing::stop_zotune_after(long_run_args(model, d, tmp / "run", {}), tmp / "run" / "metrics.jsonl",
                                               4, SIGINT);
  ASSERT_TRUE(stop.running_at_signal && stop.marker_lines >= 4) << "the signal did not land mid-run";
  EXPECT_TRUE(stop.exited_with(130));
  Json st = read_json_file(tmp / "run" / "trainer_state.json");
  const int64_t stopped = st["step"].get<int64_t>();
  ASSERT_GE(stopped, 3);
  EXPECT_FALSE(st["finished"].get<bool>());

  const int total = static_cast<int>(stopped) + 3;
  auto r = run_zotune(train_cmd(model, d, tmp / "run", total, "--resume " + quote(tmp / "run")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(run_zotune(train_cmd(model, d, tmp / "straight", total)).exit_code, 0);
  EXPECT_EQ(slurp(tmp / "run" / "model.safetensors"), slurp(tmp / "straight" / "model.safetensors"));
}

// The disk tier: a run killed with SIGKILL (no checkpoint, write-backs in flight)
// continues from its working copy and ends bit-identical to an uninterrupted run;
// the fp32 RAM tier gives the same bytes.
TEST(Train, DiskTierSurvivesSigkillAndMatchesTheRamTier) {
  TempDir tmp;
  const fs::path model = testing::golden_dir() / "qwen3";
  write_fixed_word_data(tmp / "d.jsonl", 40, 5);
  const fs::path d = tmp / "d.jsonl";
  const auto stop = testing::stop_zotune_after(long_run_args(model, d, tmp / "run", {"--offload", "disk"}),
                                               tmp / "run" / "metrics.jsonl", 6, SIGKILL);
  ASSERT_TRUE(stop.running_at_signal && stop.marker_lines >= 6 && stop.killed_by(SIGKILL))
      << "the kill did not land mid-run (" << stop.marker_lines << " steps logged)";
  ASSERT_TRUE(fs::exists(tmp / "run" / "disk-weights"));

  const int total = static_cast<int>(metrics(tmp / "run").size()) + 4;
  auto r = run_zotune(train_cmd(model, d, tmp / "run", total, "--offload disk --resume " + quote(tmp / "run")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The resume continues the killed run's working copy, not a fresh one: at the
  // step its update log reached (the metrics line of a step comes first).
  EXPECT_GE(continued_at(r.output), stop.marker_lines - 1) << r.output;
  ASSERT_EQ(run_zotune(train_cmd(model, d, tmp / "ram", total)).exit_code, 0);
  EXPECT_EQ(slurp(tmp / "run" / "model.safetensors"), slurp(tmp / "ram" / "model.safetensors"));
}

TEST(TrainMalformed, BadDataLineNamesFileAndLine) {
  TempDir tmp;
  std::ofstream(tmp / "d.jsonl") << "{\"input_ids\": [5, 6, 7]}\n{\"input_ids\": [5, \"x\"]}\n";
  auto r = run_zotune(train_cmd(testing::golden_dir() / "gpt2", tmp / "d.jsonl", tmp / "run", 2));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("d.jsonl:2"), std::string::npos) << r.output;
  std::ofstream(tmp / "e.jsonl") << "{\"text\": \"needs a tokenizer\"}\n";
  r = run_zotune(train_cmd(testing::golden_dir() / "gpt2", tmp / "e.jsonl", tmp / "run2", 2));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("e.jsonl"), std::string::npos) << r.output;
  r = run_zotune(train_cmd(testing::golden_dir() / "gpt2", tmp / "missing.jsonl", tmp / "run3", 2));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("missing.jsonl"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zotune
