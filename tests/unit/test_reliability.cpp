// Nothing lost, nothing silently wrong (issue 11): each test is one defect found
// by a hostile run of every command, and fails on the code before its fix.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "child_run.h"
#include "data/dataset.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/finite.h"
#include "model/architecture.h"
#include "test_util.h"
#include "store/lowbit_store.h"
#include "train/engine.h"
#include "train/plot.h"
#include "train/run_lock.h"
#include "train/update_log.h"

extern char** environ;

namespace zotune {
namespace {

namespace fs = std::filesystem;
using testing::quote;
using testing::run_zotune;
using testing::slurp;
using testing::TempDir;

void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

fs::path golden(const char* name) { return testing::golden_dir() / name; }

// Pre-tokenized completion data for the tiny golden models (vocabularies >= 151).
void write_data(const fs::path& p, int n, uint32_t seed, int prompt_len = 6) {
  std::ofstream f(p);
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    f << "{\"prompt_ids\": [";
    for (int t = 0; t < prompt_len; ++t) f << (t ? ", " : "") << 3 + rng() % 130;
    f << "], \"completion_ids\": [77]}\n";
  }
}

std::string train_cmd(const fs::path& model, const fs::path& data, const fs::path& out, int steps,
                      const std::string& extra = "") {
  return "train --model " + quote(model) + " --data " + quote(data) + " --out " + quote(out) + " --steps " +
         std::to_string(steps) + " --batch-size 4 --lr 1e-3 --eps 1e-3 --seed 5 --progress log " + extra;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Spawns `zotune args...` with stderr to `log`; returns the pid.
pid_t spawn_zotune(std::vector<std::string> args, const fs::path& log) {
  args.insert(args.begin(), ZOTUNE_BINARY);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, ZOTUNE_BINARY, &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

template <class Pred>
bool wait_for(Pred pred, double seconds) {
  for (int i = 0; i < static_cast<int>(seconds * 50); ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Exit code of a child (128 + signal when killed), waiting at most `seconds`; -1 on timeout (then killed).
int wait_exit(pid_t pid, double seconds) {
  int status = 0;
  const bool done = wait_for([&] { return waitpid(pid, &status, WNOHANG) == pid; }, seconds);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

using testing::metrics;

// ---- 1. forward never writes into an input model directory or over an input file.
TEST(Reliability, ForwardRefusesToOverwriteItsInputs) {
  TempDir tmp;
  fs::copy(golden("gpt2"), tmp / "m");
  const std::string weights = slurp(tmp / "m" / "model.safetensors");
  auto r = run_zotune("forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "m" / "input.json") +
                      " --output " + quote(tmp / "m" / "model.safetensors"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "input --model directory")) << r.output;
  EXPECT_EQ(slurp(tmp / "m" / "model.safetensors"), weights);
  fs::copy(tmp / "m" / "input.json", tmp / "in.json");
  const std::string input = slurp(tmp / "in.json");
  r = run_zotune("forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "in.json") + " --output " +
                 quote(tmp / "in.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "input --input file")) << r.output;
  EXPECT_EQ(slurp(tmp / "in.json"), input);
  // Beside the inputs is fine.
  r = run_zotune("forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "in.json") + " --output " +
                 quote(tmp / "out.safetensors"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// ---- 2. A final export that hits a full disk leaves the previous model in place.
TEST(Reliability, FinalExportOnAFullDiskKeepsThePreviousModel) {
  TempDir tmp;
  const fs::path mnt = tmp / "mnt";
  fs::create_directories(mnt);
  // The suite runs as root (see RealEnospcOnTinyTmpfs in test_disk_store.cpp).
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  struct Unmount { fs::path p; ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); } } unmount{mnt};
  write_data(tmp / "d.jsonl", 16, 1);
  const fs::path run = mnt / "run";
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 3));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string before = slurp(run / "model.safetensors");
  // Fill the file system up to half a model: the journals still fit, the new weights do not.
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(mnt.c_str(), &sv), 0);
  const uint64_t free_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  ASSERT_GT(free_bytes, before.size());
  spit(mnt / "filler", std::string(free_bytes - before.size() / 2, 'x'));
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 5, "--resume " + quote(run)));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "No space left on device")) << r.output;
  ASSERT_TRUE(fs::exists(run / "model.safetensors")) << "the previous model was deleted before the new one was written";
  EXPECT_EQ(slurp(run / "model.safetensors"), before);
  fs::remove(mnt / "filler");
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 5, "--resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(slurp(run / "model.safetensors"), before);
}

// ---- 3. One run per output directory, for the run's life.
TEST(Reliability, ASecondRunOnTheSameOutIsRefusedWhileTheFirstLives) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 16, 2);
  const fs::path run = tmp / "run";
  const pid_t pid = spawn_zotune({"train", "--model", golden("gpt2").string(), "--data", (tmp / "d.jsonl").string(),
                                  "--out", run.string(), "--steps", "1000000", "--batch-size", "4", "--lr", "1e-3", "--eps",
                                  "1e-3", "--seed", "5", "--progress", "log"},
                                 tmp / "first.log");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for([&] { return fs::exists(run / "metrics.jsonl") && metrics(run).size() >= 2; }, 60));
  auto second = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 3));
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_TRUE(contains(second.output, "in use by another zotune run")) << second.output;
  auto resume = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 3, "--resume " + quote(run)));
  EXPECT_EQ(resume.exit_code, 1) << resume.output;
  EXPECT_TRUE(contains(resume.output, "in use by another zotune run")) << resume.output;
  kill(pid, SIGKILL);  // the kernel drops the lock with the process
  EXPECT_EQ(wait_exit(pid, 30), 128 + SIGKILL);
  const int64_t logged = static_cast<int64_t>(read_update_log(run / "updates.jsonl").records.size());
  resume = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, static_cast<int>(logged) + 1,
                                "--resume " + quote(run)));
  EXPECT_EQ(resume.exit_code, 0) << resume.output;
}

// ---- 4. Deep or huge JSONL lines: a clear, short error, never a crash.
TEST(Reliability, DeepAndHugeJsonLinesGiveShortErrors) {
  TempDir tmp;
  spit(tmp / "deep.jsonl", std::string(100000, '[') + std::string(100000, ']') + "\n");
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "deep.jsonl", tmp / "a", 1));
  EXPECT_EQ(r.exit_code, 1) << r.output.substr(0, 500);
  EXPECT_TRUE(contains(r.output, "deep.jsonl:1")) << r.output.substr(0, 500);
  EXPECT_TRUE(contains(r.output, "nested deeper than")) << r.output.substr(0, 500);
  EXPECT_LT(r.output.size(), 2000u);
  std::string big = "{\"text\": [";
  for (int i = 0; i < 1000000; ++i) big += (i ? "," : "") + std::to_string(i);
  spit(tmp / "big.jsonl", big + "]}\n");
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "big.jsonl", tmp / "b", 1));
  EXPECT_EQ(r.exit_code, 1) << r.output.substr(0, 500);
  EXPECT_TRUE(contains(r.output, "big.jsonl:1")) << r.output.substr(0, 500);
  EXPECT_LT(r.output.size(), 2000u) << r.output.substr(0, 500);
  // The same bound for every JSON input, e.g. config.json.
  fs::create_directories(tmp / "m");
  spit(tmp / "m" / "config.json", std::string(5000, '[') + std::string(5000, ']'));
  r = run_zotune("inspect --model " + quote(tmp / "m"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "config.json: JSON nested deeper than")) << r.output.substr(0, 500);
}

TEST(Reliability, JsonExcerptIsBoundedForAnyValue) {
  Json deep = Json::array();
  Json* cur = &deep;
  for (int i = 0; i < 100000; ++i) {  // built without recursion; excerpting must not recurse 1e5 deep
    cur->push_back(Json::array());
    cur = &(*cur)[0];
  }
  EXPECT_EQ(json_excerpt(deep, 10), "[[[[[[[[[[...");
  Json big = Json::array();
  for (int i = 0; i < 100000; ++i) big.push_back(i);
  EXPECT_EQ(json_excerpt(big, 12), "[0, 1, 2, 3,...");
  EXPECT_EQ(json_excerpt(Json{{"a", 1}}), "{\"a\": 1}");
  EXPECT_NE(json_depth_exceeded(std::string(129, '[')), std::string_view::npos);
  EXPECT_EQ(json_depth_exceeded(std::string(128, '[')), std::string_view::npos);
  EXPECT_EQ(json_depth_exceeded("\"[[[[[[[[\\\"[[[[\""), std::string_view::npos) << "brackets in strings do not count";
  // Releasing the deep value without recursion is nlohmann's job (iterative since 3.10).
  deep = nullptr;
}

// Fuzzer findings: exceptions other than zotune::Error escaping a parser (the
// CLI printed them without a file name).
TEST(Reliability, FuzzerFindingsAreCleanErrors) {
  for (const char* text : {"8888888888888888888888888888888888888888888888888888888888888E8888888888",
                           "{\"step\": 51e1970}", "[66000.00003e00000000000000000000000000000000066000]"}) {
    try {
      parse_json(text, "f.json");
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "f.json: invalid JSON")) << e.what();
    }
  }
  TempDir tmp;
  spit(tmp / "u.jsonl", "{\"format\": \"zotune-updates\", \"model_type\": 7}\n");
  try {
    read_update_log(tmp / "u.jsonl");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "u.jsonl:1: field 'model_type' must be a string")) << e.what();
  }
  spit(tmp / "v.jsonl", "{\"format\": 5}\n");
  EXPECT_THROW(read_update_log(tmp / "v.jsonl"), Error);
  // Integer fields given as floats: 8.9e72 converted to int64 was undefined
  // behaviour, 12345.78 was cut to a seed (fuzz_update_log, 10-minute run).
  {
    const std::string header =
        R"({"format":"zotune-updates","version":1,"base_model":"/m","model_type":"gpt2","parameters":124439808,)"
        R"("run_seed":4,"perturbation":"gaussian","weight_decay":0.01,"eps":0.001,"one_sided":false})"
        "\n";
    const std::pair<const char*, const char*> cases[] = {
        {R"({"step":8888888888888888888888888888888888888888888888888888888888888888888888882,"seed":42,"lr":0.001,"grad":-1.25})",
         "w.jsonl:2: field 'step' = 8.888888888888889e+72 must be an integer"},
        {R"({"step":1,"seed":12345.7890123,"lr":0.001,"grad":0.5})",
         "w.jsonl:2: field 'seed' = 12345.7890123 must be an integer >= 0"},
        {R"({"step":1,"lr":0.001,"terms":[{"seed":-3,"coeff":0.5}]})", "w.jsonl:2: field 'seed' = -3 must be an integer >= 0"},
    };
    for (const auto& [record, message] : cases) {
      spit(tmp / "w.jsonl", header + record + "\n");
      try {
        read_update_log(tmp / "w.jsonl");
        ADD_FAILURE() << record;
      } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), message)) << e.what();
      }
    }
  }
  // A line whose error quotes it, cut inside a UTF-8 sequence (the BOM EF BB BF):
  // dump() threw nlohmann's "incomplete UTF-8 string" (fuzz_jsonl, long run).
  {
    const std::string line = "\"se{\xEF\xBB\xBF" "cs" + std::string(52, 't') + "e{\xEF\xBB\xBF" "cel@\"";
    DatasetOptions o;
    o.max_length = 60;
    o.vocab_size = 1000;
    try {
      (void)Dataset::parse_jsonl(line, "d.jsonl", o, nullptr);
      ADD_FAILURE() << "a JSON string was taken for a record";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "d.jsonl:1: a line must be a JSON object, got \"se{")) << e.what();
    }
    Json cut = Json::object();
    cut["x"] = std::string(91, 'a') + "\xE2\x82\xAC";  // the euro sign straddles the cut
    EXPECT_EQ(json_excerpt(cut, 100), "{\"x\": \"" + std::string(91, 'a') + "...");
  }
  // A token id of 1.5e9 in tokenizer.json sized a 12 GB id table (fuzz_tokenizer, long run).
  fs::create_directories(tmp / "tok");
  spit(tmp / "tok" / "tokenizer.json",
       R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1500000000}, "merges": []}})");
  auto r = run_zotune("tokenize --tokenizer " + quote(tmp / "tok") + " --text ab");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "token id 1500000000 is beyond zotune's limit of 16777215 token ids")) << r.output;
  // 50,000 added tokens: each used to rebuild the matching tries (quadratic: minutes).
  {
    std::string added;
    for (int i = 0; i < 50000; ++i)
      added += (i ? ", " : "") + std::string(R"({"id": )") + std::to_string(2 + i) + R"(, "content": "<|t)" +
               std::to_string(i) + R"(|>", "special": true})";
    spit(tmp / "tok" / "tokenizer.json", R"({"added_tokens": [)" + added +
                                             R"(], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})");
  }
  const pid_t pid = spawn_zotune({"tokenize", "--tokenizer", (tmp / "tok").string(), "--text", "a<|t49999|>b<|t7|>"},
                                 tmp / "tok.log");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(wait_exit(pid, 60), 0) << slurp(tmp / "tok.log");
}

// ---- 6. Config sizes are checked (limits, then the checkpoint) before allocating.
TEST(Reliability, HugeConfigSizesAreRefusedBeforeAllocating) {
  TempDir tmp;
  fs::copy(golden("gpt2"), tmp / "m");
  Json c = read_json_file(tmp / "m" / "config.json");
  c["n_layer"] = 10000000;
  spit(tmp / "m" / "config.json", c.dump());
  // 2 GB of address space: the old code allocated a 10 GB table before failing.
  auto r = run_zotune("inspect --model " + quote(tmp / "m"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "field 'n_layer' = 10000000 is beyond the supported limit")) << r.output;
  c["n_layer"] = 2;
  c["n_embd"] = int64_t{1} << 62;
  spit(tmp / "m" / "config.json", c.dump());
  r = run_zotune("inspect --model " + quote(tmp / "m"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "field 'n_embd'")) << r.output;
  EXPECT_FALSE(contains(r.output, "n_inner")) << r.output;
  // Within the limits but not what the checkpoint holds: named before anything is allocated.
  c["n_embd"] = 48;
  c["n_layer"] = 1000;
  spit(tmp / "m" / "config.json", c.dump());
  r = run_zotune("forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "m" / "input.json") + " --output " +
                 quote(tmp / "o.safetensors"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "missing tensor 'transformer.h.2.ln_1.weight'")) << r.output;
}

// ---- 8. Non-finite weights and invalid config values are load errors.
void poke(const fs::path& file, const std::string& tensor, int64_t index, float value) {
  uint64_t off = 0;
  {
    SafetensorsFile f(file);
    const TensorInfo* t = f.find(tensor);
    ASSERT_NE(t, nullptr) << tensor;
    off = f.data_offset() + t->begin + static_cast<uint64_t>(index) * dtype_size(t->dtype);
    ASSERT_EQ(t->dtype, DType::F32);
  }
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(static_cast<std::streamoff>(off));
  io.write(reinterpret_cast<const char*>(&value), sizeof value);
}

TEST(Reliability, NonFiniteWeightsFailAtLoadNamingTheTensor) {
  TempDir tmp;
  fs::copy(golden("gpt2"), tmp / "m");
  poke(tmp / "m" / "model.safetensors", "transformer.h.0.attn.c_attn.weight", 5, std::numeric_limits<float>::quiet_NaN());
  const std::string fwd = "forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "m" / "input.json") +
                          " --output " + quote(tmp / "o.safetensors");
  auto r = run_zotune(fwd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "tensor 'transformer.h.0.attn.c_attn.weight' holds a non-finite value")) << r.output;
  EXPECT_TRUE(contains(r.output, "flat index 5")) << r.output;
  write_data(tmp / "d.jsonl", 8, 3);
  r = run_zotune(train_cmd(tmp / "m", tmp / "d.jsonl", tmp / "run", 2));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "c_attn.weight' holds a non-finite value")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "run" / "model.safetensors"));
}

TEST(Reliability, InvalidConfigValuesFailAtLoadNamingTheField) {
  TempDir tmp;
  for (auto [field, value] : std::vector<std::pair<std::string, double>>{
           {"rope_theta", -1}, {"rope_theta", 0}, {"rms_norm_eps", 0}, {"rms_norm_eps", -1e-6}}) {
    fs::remove_all(tmp / "m");
    fs::copy(golden("llama"), tmp / "m");
    Json c = read_json_file(tmp / "m" / "config.json");
    c[field] = value;
    spit(tmp / "m" / "config.json", c.dump());
    auto r = run_zotune("inspect --model " + quote(tmp / "m"));
    EXPECT_EQ(r.exit_code, 1) << field << ": " << r.output;
    EXPECT_TRUE(contains(r.output, "field '" + field + "' must be a finite number > 0")) << r.output;
  }
  fs::remove_all(tmp / "m");
  fs::copy(golden("gpt2"), tmp / "m");
  Json c = read_json_file(tmp / "m" / "config.json");
  c["layer_norm_epsilon"] = -1;
  spit(tmp / "m" / "config.json", c.dump());
  auto r = run_zotune("inspect --model " + quote(tmp / "m"));
  EXPECT_TRUE(contains(r.output, "field 'layer_norm_epsilon' must be a finite number > 0")) << r.output;
}

// The finite check against its scalar reference (std::isfinite), odd sizes, every position.
TEST(Reliability, FirstNonFiniteMatchesIsfinite) {
  std::mt19937 rng(7);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  for (int64_t n : {1, 7, 4095, 4097, 70001, (1 << 21) + 3}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    std::normal_distribution<float> nd(0, 1e30f);
    for (auto& v : x) v = nd(rng);
    x[0] = std::numeric_limits<float>::max();
    x[static_cast<std::size_t>(n - 1)] = std::numeric_limits<float>::denorm_min();
    EXPECT_EQ(kernels::first_nonfinite_f32(x.data(), n), -1) << n;
    for (int k = 0; k < 4; ++k) {
      std::vector<float> y = x;
      const auto at = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      y[static_cast<std::size_t>(at)] = specials[k % 3];
      if (k == 3 && at + 1 < n) y[static_cast<std::size_t>(n - 1)] = specials[0];  // a later one too
      int64_t want = -1;
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(y[static_cast<std::size_t>(i)])) { want = i; break; }
      EXPECT_EQ(kernels::first_nonfinite_f32(y.data(), n), want) << n;
      // bf16 and fp16 bit patterns of the same values (truncation keeps NaN/Inf/finite apart for bf16).
      std::vector<uint16_t> b(y.size());
      for (std::size_t i = 0; i < y.size(); ++i) {
        uint32_t u;
        std::memcpy(&u, &y[i], 4);
        b[i] = static_cast<uint16_t>(u >> 16);
      }
      EXPECT_EQ(kernels::first_nonfinite_bf16(b.data(), n), want) << n;
    }
  }
  const uint16_t h[] = {0x3c00, 0x7bff, 0xfbff, 0x0001, 0x7c00, 0x7e00};  // 1, max, -max, denormal, inf, nan
  EXPECT_EQ(kernels::first_nonfinite_f16(h, 4), -1);
  EXPECT_EQ(kernels::first_nonfinite_f16(h, 6), 4);
  EXPECT_EQ(kernels::first_nonfinite_f16(h + 5, 1), 0);
  // Unaligned fp32 data (a tensor after an odd-sized one in a safetensors file).
  std::vector<char> raw(4 * 9 + 1);
  float vals[9] = {1, 2, 3, 4, 5, 6, 7, std::numeric_limits<float>::infinity(), 9};
  std::memcpy(raw.data() + 1, vals, sizeof vals);
  EXPECT_EQ(kernels::first_nonfinite_f32(reinterpret_cast<const float*>(raw.data() + 1), 9), 7);
}

// ---- 10. replay checks what it applies.
TEST(Reliability, ReplayRefusesForeignModelsTornLogsAndNonFiniteUpdates) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 4);
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 3)).exit_code, 0);
  const fs::path log = tmp / "run" / "updates.jsonl";
  auto replay = [&](const fs::path& model, const fs::path& l, const std::string& out, const std::string& extra = "") {
    return run_zotune("replay --model " + quote(model) + " --log " + quote(l) + " --out " + quote(tmp / out) + " " + extra);
  };
  auto r = replay(golden("opt"), log, "opt");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "field 'model_type': the log was written for a \"gpt2\" model")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "opt" / "model.safetensors"));

  // A gpt2 of another size.
  fs::copy(golden("gpt2"), tmp / "other");
  {
    Json c = read_json_file(tmp / "other" / "config.json");
    c["n_layer"] = 1;
    spit(tmp / "other" / "config.json", c.dump());
  }
  r = replay(tmp / "other", log, "other_out");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "field 'parameters'")) << r.output;

  // A torn last line: an error unless --steps stops before it.
  std::string text = slurp(log);
  spit(tmp / "torn.jsonl", text.substr(0, text.size() - 10));
  r = replay(golden("gpt2"), tmp / "torn.jsonl", "torn");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "torn.jsonl:4: the last line is incomplete")) << r.output;
  EXPECT_TRUE(contains(r.output, "--steps 2")) << r.output;
  r = replay(golden("gpt2"), tmp / "torn.jsonl", "torn", "--steps 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // grad beyond float32 is a log error; a finite grad that blows the weights up is a replay error.
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  auto with_grad = [&](const std::string& g, double lr = 1e-3) {
    Json rec = Json::parse(lines[2]);
    rec["grad"] = Json::parse(g);
    rec["lr"] = lr;
    std::string s;
    for (std::size_t i = 0; i < lines.size(); ++i) s += (i == 2 ? rec.dump() : lines[i]) + "\n";
    return s;
  };
  spit(tmp / "inf.jsonl", with_grad("1e39"));
  r = replay(golden("gpt2"), tmp / "inf.jsonl", "inf");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "inf.jsonl:3: field 'grad' = 1e+39 is not a finite float32")) << r.output;
  spit(tmp / "huge.jsonl", with_grad("1e38", 10.0));  // each finite, lr * grad * z is not
  r = replay(golden("gpt2"), tmp / "huge.jsonl", "huge");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "holds a non-finite value")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "huge" / "model.safetensors"));
}

// ---- 15. Options are checked against the model before the output directory exists.
TEST(Reliability, BadOptionsLeaveNoOutputDirectory) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 5);
  struct Case { std::string extra, message; };
  for (const Case& c : std::vector<Case>{{"--max-length 100000", "--max-length 100000 is beyond the model's 64 positions"},
                                         {"--lr nan", "--lr must be a finite number"},
                                         {"--eps 0", "--eps must be a finite number > 0"},
                                         {"--weight-decay -1", "--weight-decay must be a finite number >= 0"},
                                         {"--save-every -2", "--save-every must be >= 0"}}) {
    auto r = run_zotune("train --model " + quote(golden("gpt2")) + " --data " + quote(tmp / "d.jsonl") + " --out " +
                        quote(tmp / "run") + " --steps 2 " + c.extra);
    EXPECT_EQ(r.exit_code, 1) << c.extra << ": " << r.output;
    EXPECT_TRUE(contains(r.output, c.message)) << r.output;
    EXPECT_FALSE(fs::exists(tmp / "run")) << c.extra;
  }
  // The default --max-length (256) is lowered to the model's 64 positions.
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 1));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// ---- 16. Unclear errors made clear.
TEST(Reliability, UnclearErrorsNameTheProblem) {
  TempDir tmp;
  fs::create_directories(tmp / "dir");
  write_data(tmp / "d.jsonl", 8, 6);
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "dir", tmp / "run", 1));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "is a directory")) << r.output;
  fs::create_directories(tmp / "tok");
  fs::copy_file(testing::source_dir() / "fuzz" / "seeds" / "tokenizer" / "gpt2.json", tmp / "tok" / "tokenizer.json");
  r = run_zotune("tokenize --tokenizer " + quote(tmp / "tok") + " --text-file " + quote(tmp / "dir"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "is a directory")) << r.output;
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 1, "--memory-budget 1e30G"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "--memory-budget: '1e30G' is larger than")) << r.output;
  for (const std::string& bad : {train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 1, "--seed 18446744073709551616"),
                                 train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 1, "--threads -3"),
                                 std::string("generate --model ") + quote(golden("gpt2")) + " --input-ids 1,2 --top-k -5"}) {
    r = run_zotune(bad);
    EXPECT_NE(r.exit_code, 0) << bad << "\n" << r.output;
    EXPECT_FALSE(fs::exists(tmp / "run"));
  }
  // --out inside the input model.
  fs::copy(golden("gpt2"), tmp / "m");
  r = run_zotune(train_cmd(tmp / "m", tmp / "d.jsonl", tmp / "m" / "sub", 1));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "is inside the input --model directory")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "m" / "sub"));
  // An empty prompt is named as such.
  r = run_zotune("generate --model " + quote(golden("qwen3")) + " --prompt ''");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "--prompt is empty")) << r.output;
  // forward prints JSON: a loss that overflowed (finite but huge weights) is null, not nan.
  fs::remove_all(tmp / "m");
  fs::copy(golden("gpt2"), tmp / "m");
  for (int64_t i = 0; i < 48; ++i) poke(tmp / "m" / "model.safetensors", "transformer.ln_f.weight", i, 3e38f);
  r = run_zotune("forward --model " + quote(tmp / "m") + " --input " + quote(tmp / "m" / "input.json") + " --output " +
                 quote(tmp / "o.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Json j = Json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.output;
  EXPECT_TRUE(j["loss"].is_null()) << r.output;
  // Resuming a finished run adds no second final evaluation.
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "fin", 2, "--eval " + quote(tmp / "d.jsonl")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "fin", 2,
                           "--eval " + quote(tmp / "d.jsonl") + " --resume " + quote(tmp / "fin")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int evals_at_2 = 0;
  for (auto& m : metrics(tmp / "fin")) evals_at_2 += m["type"] == "eval" && m["step"] == 2;
  EXPECT_EQ(evals_at_2, 1);
}

// A loss curve whose values differ by one ulp (a loss and its EMA after one step)
// hung the plot (a tick step below the values' resolution) and then ran out of memory.
TEST(Reliability, PlotOfValuesOneUlpApartFinishes) {
  const double a = 3.9331, b = std::nextafter(a, 10.0);
  const std::string svg = render_svg_plot("t", "step", "loss", {{"l", "#000", {1}, {a}, false, 1.0},
                                                                {"e", "#111", {1}, {b}, false, 1.0}});
  EXPECT_TRUE(contains(svg, "<svg")) << svg.substr(0, 200);
  EXPECT_LT(svg.size(), 20000u);
  const std::string wide = render_svg_plot("t", "step", "loss", {{"l", "#000", {1e15, 1e15 + 0.125}, {a, b}, false, 1.0}});
  EXPECT_LT(wide.size(), 20000u);
}

// ---- 17. Written configs state what zotune assumed; Qwen3 gets "sliding_window": null.
TEST(Reliability, QwenConfigWrittenWithSlidingWindowNull) {
  TempDir tmp;
  auto r = run_zotune("init --arch qwen3 --preset tiny --out " + quote(tmp / "q"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Json c = read_json_file(tmp / "q" / "config.json");
  ASSERT_TRUE(c.contains("sliding_window"));
  EXPECT_TRUE(c["sliding_window"].is_null());
  EXPECT_EQ(c["use_sliding_window"], false);
  // A trained copy of a config that has no sliding_window key states it too.
  fs::copy(golden("qwen3"), tmp / "m");
  Json in = read_json_file(tmp / "m" / "config.json");
  in.erase("sliding_window");
  spit(tmp / "m" / "config.json", in.dump());
  write_data(tmp / "d.jsonl", 8, 7);
  r = run_zotune(train_cmd(tmp / "m", tmp / "d.jsonl", tmp / "run", 1));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  c = read_json_file(tmp / "run" / "config.json");
  ASSERT_TRUE(c.contains("sliding_window"));
  EXPECT_TRUE(c["sliding_window"].is_null());
}

// For each architecture: the fields zotune defaults when a config leaves them
// out, with the Hugging Face default (transformers' configuration_<arch>.py).
// The written config must state each one, and the value zotune assumed must be
// HF's — except where noted, where HF's default differs and stating it is what
// keeps the written model's meaning.
TEST(Reliability, WrittenConfigsStateEveryAssumedFieldWithTheHfDefault) {
  struct Field { std::string key; Json hf_default; };
  struct Arch { std::string type; std::vector<Field> fields; };
  const std::vector<Arch> archs = {
      {"gpt2", {{"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}, {"scale_attn_weights", true},
                {"tie_word_embeddings", true}, {"n_inner", "4*n_embd"}}},
      {"opt", {{"do_layer_norm_before", true}, {"enable_bias", true}, {"layer_norm_elementwise_affine", true},
               {"activation_function", "relu"}, {"tie_word_embeddings", true}, {"word_embed_proj_dim", "hidden_size"}}},
      {"llama", {{"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"attention_bias", false}, {"mlp_bias", false},
                 {"tie_word_embeddings", false}, {"head_dim", "hidden_size/num_attention_heads"},
                 {"num_key_value_heads", "num_attention_heads"}}},
      // Qwen3Config: head_dim 128, num_key_value_heads 32 when absent (zotune: num_attention_heads — stated).
      {"qwen3", {{"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"attention_bias", false}, {"head_dim", 128},
                 {"tie_word_embeddings", false}, {"num_key_value_heads", "num_attention_heads"},
                 {"sliding_window", nullptr}, {"use_sliding_window", false}}},
  };
  for (const Arch& a : archs) {
    Json full = architecture_preset(a.type, "tiny");
    Json minimal = full;
    for (const Field& f : a.fields) minimal.erase(f.key);
    auto arch = make_architecture(minimal, a.type + " minimal");
    const Json& written = arch->config().json;
    for (const Field& f : a.fields) {
      SCOPED_TRACE(a.type + "." + f.key);
      ASSERT_TRUE(written.contains(f.key));
      Json want = f.hf_default;
      if (want == "4*n_embd") want = 4 * minimal["n_embd"].get<int64_t>();
      if (want == "hidden_size") want = minimal["hidden_size"];
      if (want == "num_attention_heads") want = minimal["num_attention_heads"];
      if (want == "hidden_size/num_attention_heads")
        want = minimal["hidden_size"].get<int64_t>() / minimal["num_attention_heads"].get<int64_t>();
      EXPECT_EQ(written[f.key], want);
    }
    // Rebuilding from the written config gives the same tensor table (the statement is faithful).
    auto again = make_architecture(written, a.type + " written");
    ASSERT_EQ(again->tensors().size(), arch->tensors().size());
    for (std::size_t i = 0; i < arch->tensors().size(); ++i)
      EXPECT_EQ(again->tensors()[i].shape, arch->tensors()[i].shape);
  }
}

// ---- 5. Signals: the first stops at a safe point (an eval batch too) with a
// resumable state; a second ends the process at once; never exit 0.
// A 3-step run whose evaluations (3000 examples in batches of `eval_batch`)
// take a while; returns its pid once trainer_state.json (written just before
// the first evaluation) exists, or -1.
pid_t spawn_eval_heavy_run(const TempDir& tmp, const std::string& eval_batch) {
  write_data(tmp / "d.jsonl", 8, 8);
  write_data(tmp / "eval.jsonl", 3000, 9, 60);
  const pid_t pid = spawn_zotune({"train", "--model", golden("gpt2").string(), "--data", (tmp / "d.jsonl").string(),
                                  "--eval", (tmp / "eval.jsonl").string(), "--eval-batch-size", eval_batch,
                                  "--out", (tmp / "run").string(), "--steps", "3", "--batch-size", "4", "--lr", "1e-3",
                                  "--eps", "1e-3", "--seed", "5", "--progress", "log", "--threads", "1"},
                                 tmp / "log");
  if (pid > 0 && !wait_for([&] { return fs::exists(tmp / "run" / "trainer_state.json"); }, 60)) return -1;
  return pid;
}

TEST(Reliability, FirstSignalStopsEvaluationAndLeavesAResumableRun) {
  TempDir tmp;
  const fs::path run = tmp / "run";
  const pid_t pid = spawn_eval_heavy_run(tmp, "4");
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGINT);
  EXPECT_EQ(wait_exit(pid, 10), 130) << slurp(tmp / "log");
  EXPECT_TRUE(contains(slurp(tmp / "log"), "stopped by signal 2")) << slurp(tmp / "log");
  for (auto& m : metrics(run)) EXPECT_NE(m["type"], "eval") << "an abandoned evaluation leaves no record";
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 3,
                                "--eval " + quote(tmp / "d.jsonl") + " --resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Reliability, SecondSignalExitsAtOnce) {
  TempDir tmp;
  // One evaluation batch of 3000 examples: the first signal would wait for it.
  const pid_t pid = spawn_eval_heavy_run(tmp, "3000");
  ASSERT_GT(pid, 0);
  // Back to back (two kinds: a second pending SIGINT would merge with the
  // first): the second arrives while the first is still being honoured, so it
  // is the second that ends the process, with its own code (the kernel may
  // deliver the two pending signals in either order).
  kill(pid, SIGINT);
  kill(pid, SIGTERM);
  const int code = wait_exit(pid, 10);
  EXPECT_TRUE(code == 128 + SIGTERM || code == 128 + SIGINT) << code;
  const std::string log = slurp(tmp / "log");
  EXPECT_TRUE(contains(log, "stopped at once by a second signal")) << log;
  EXPECT_FALSE(contains(log, "stopped by signal 2 before step 1")) << "the first signal's orderly stop ran: " << log;
}

// ---- 14. A run killed before trainer_state.json exists is zotune's and restartable.
TEST(Reliability, ARunKilledBeforeItsFirstStateIsRestartable) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 10);
  const fs::path run = tmp / "run";
  // What a kill during the disk tier's setup leaves: the mark, a partial working copy, journals.
  fs::create_directories(run / "disk-weights");
  spit(run / ".zotune-run", "12345\n");
  spit(run / "disk-weights" / "block-00000.bin.tmp", "partial");
  spit(run / "updates.jsonl", "{\"format\": \"zotune-updates\"}\n");
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 2, "--resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "stopped before its first step was recorded")) << r.output;
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 2, "--offload disk"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(run / "model.safetensors"));
  // A directory that is not zotune's is still refused, untouched.
  fs::create_directories(tmp / "mine");
  spit(tmp / "mine" / "notes.txt", "mine");
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "mine", 2));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "is not empty")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "mine" / ".zotune-run"));
}

// ---- 7. replay reproduces runs with 16-bit storage bit for bit (the log
// records the storage dtype; replay rounds with the run's stream).
TEST(Reliability, ReplayReproducesSixteenBitStorageBitForBit) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 21);
  const std::pair<const char*, const char*> runs[] = {{"gpt2", "--offload ram --storage-dtype bf16"},
                                                      {"qwen3", "--offload disk --storage-dtype fp16"}};
  for (const auto& [model, tier] : runs) {
    const fs::path run = tmp / (std::string(model) + "_run"), out = tmp / (std::string(model) + "_replay");
    auto r = run_zotune(train_cmd(golden(model), tmp / "d.jsonl", run, 4, tier));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(read_update_log(run / "updates.jsonl").header["storage_dtype"],
              std::string(tier).find("bf16") != std::string::npos ? "BF16" : "F16");
    r = run_zotune("replay --model " + quote(golden(model)) + " --log " + quote(run / "updates.jsonl") + " --out " +
                   quote(out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(slurp(out / "model.safetensors"), slurp(run / "model.safetensors")) << model << " " << tier;
  }
}

// ---- 11. The storage dtype is part of the run identity; the tier is not (same bits).
TEST(Reliability, StorageDtypeIsPartOfTheRunIdentity) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 22);
  const fs::path run = tmp / "run";
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 2, "--offload ram --storage-dtype bf16")).exit_code, 0);
  auto r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 4, "--resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the run used --storage-dtype \"bf16\", this command gives \"fp32\"")) << r.output;
  // Another tier with the same dtype continues the same arithmetic.
  r = run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", run, 4, "--offload disk --storage-dtype bf16 --resume " + quote(run)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "ref", 4, "--offload ram --storage-dtype bf16")).exit_code, 0);
  EXPECT_EQ(slurp(run / "model.safetensors"), slurp(tmp / "ref" / "model.safetensors"));
}

// ---- 9. Resume starts from the newest intact checkpoint, also after a resume
// killed before its first checkpoint; a changed base model is an error.
TEST(Reliability, ResumeStartsFromTheNewestIntactCheckpoint) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 23);
  const fs::path run = tmp / "run", d = tmp / "d.jsonl";
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), d, tmp / "ref", 6)).exit_code, 0);
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), d, run, 3, "--save-every 1")).exit_code, 0);
  ASSERT_TRUE(fs::exists(run / "checkpoint-000002"));
  // What a resume killed before its first checkpoint used to leave: no weights named.
  Json st = read_json_file(run / "trainer_state.json");
  st["weights"] = "";
  spit(run / "trainer_state.json", st.dump());
  // A resume, killed before it writes a checkpoint, keeps naming the weights it started from.
  std::vector<std::string> args = {"train", "--model", golden("gpt2").string(), "--data", d.string(), "--out", run.string(),
                                   "--steps", "1000000", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-3", "--seed", "5",
                                   "--progress", "log", "--resume", run.string()};
  const auto stop = testing::stop_zotune_after(args, run / "metrics.jsonl", 6, SIGKILL);
  ASSERT_TRUE(stop.running_at_signal && stop.killed_by(SIGKILL)) << stop.marker_lines;
  st = read_json_file(run / "trainer_state.json");
  EXPECT_EQ(st["weights"], "checkpoint-000002") << st.dump();
  EXPECT_EQ(st["step"], 2);
  auto r = run_zotune(train_cmd(golden("gpt2"), d, run, 6, "--resume " + quote(run)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "resuming at step 2 from " + (run / "checkpoint-000002").string())) << r.output;
  EXPECT_EQ(slurp(run / "model.safetensors"), slurp(tmp / "ref" / "model.safetensors"));
  // A damaged checkpoint gives way to an older intact one.
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), d, tmp / "run2", 3, "--save-every 1")).exit_code, 0);
  st = read_json_file(tmp / "run2" / "trainer_state.json");
  st["weights"] = "checkpoint-000002";
  st["step"] = 2;
  spit(tmp / "run2" / "trainer_state.json", st.dump());
  fs::remove(tmp / "run2" / "checkpoint-000002" / "model.safetensors");
  r = run_zotune(train_cmd(golden("gpt2"), d, tmp / "run2", 6, "--resume " + quote(tmp / "run2")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "resuming at step 1 from " + (tmp / "run2" / "checkpoint-000001").string())) << r.output;
  EXPECT_EQ(slurp(tmp / "run2" / "model.safetensors"), slurp(tmp / "ref" / "model.safetensors"));
}

TEST(Reliability, AChangedBaseModelIsRefusedByResumeAndReplay) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 24);
  fs::copy(golden("gpt2"), tmp / "base");
  const fs::path run = tmp / "run";
  ASSERT_EQ(run_zotune(train_cmd(tmp / "base", tmp / "d.jsonl", run, 2)).exit_code, 0);
  EXPECT_TRUE(read_json_file(run / "trainer_state.json")["base_model_identity"].is_object());
  // A copy elsewhere is the same model.
  auto r = run_zotune("replay --model " + quote(golden("gpt2")) + " --log " + quote(run / "updates.jsonl") + " --out " +
                      quote(tmp / "rep"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // One mantissa byte of the last weight changed.
  {
    std::fstream f(tmp / "base" / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-4, std::ios::end);
    const char c = static_cast<char>(f.get() ^ 0x01);
    f.seekp(-4, std::ios::end);
    f.put(c);
  }
  r = run_zotune(train_cmd(tmp / "base", tmp / "d.jsonl", run, 4, "--resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "is not the base model the run started from")) << r.output;
  r = run_zotune("replay --model " + quote(tmp / "base") + " --log " + quote(run / "updates.jsonl") + " --out " +
                 quote(tmp / "rep2"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "--model " + (tmp / "base").string() + ": this is not the base model")) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "rep2" / "model.safetensors"));
}

// ---- 13 and 16. Flipped bytes in the disk tier's working copy fail the resume,
// naming the file and the checkpoint to resume from instead.
TEST(Reliability, DamagedDiskWorkingCopyNamesTheFileAndTheCheckpoint) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 25);
  const fs::path run = tmp / "run", d = tmp / "d.jsonl";
  std::vector<std::string> args = {"train", "--model", golden("gpt2").string(), "--data", d.string(), "--out", run.string(),
                                   "--steps", "1000000", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-3", "--seed", "5",
                                   "--progress", "log", "--offload", "disk", "--save-every", "2"};
  const auto stop = testing::stop_zotune_after(args, run / "metrics.jsonl", 5, SIGKILL);
  ASSERT_TRUE(stop.running_at_signal && stop.killed_by(SIGKILL)) << stop.marker_lines;
  const std::string ckpt = read_json_file(run / "trainer_state.json")["weights"].get<std::string>();
  ASSERT_EQ(ckpt.rfind("checkpoint-", 0), 0u) << ckpt;
  const fs::path rows = run / "disk-weights" / "rows-00000.bin";
  {
    std::fstream f(rows, std::ios::in | std::ios::out | std::ios::binary);
    for (int i = 0; i < 4; ++i) {
      f.seekg(4096 + 200 + i);
      const char c = static_cast<char>(f.get() ^ 0x10);
      f.seekp(4096 + 200 + i);
      f.put(c);
    }
  }
  auto r = run_zotune(train_cmd(golden("gpt2"), d, run, 8, "--offload disk --resume " + quote(run)));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, rows.string() + ": checksum mismatch")) << r.output;
  EXPECT_TRUE(contains(r.output, "--resume " + (run / ckpt).string() + " --out NEW_DIR")) << r.output;
  // The advice works.
  r = run_zotune(train_cmd(golden("gpt2"), d, tmp / "new", 8, "--offload disk --resume " + quote(run / ckpt)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), d, tmp / "ref", 8)).exit_code, 0);
  EXPECT_EQ(slurp(tmp / "new" / "model.safetensors"), slurp(tmp / "ref" / "model.safetensors"));
}

// ---- 12. bench --work-dir only uses directories it created (or empty ones it marks).
TEST(Reliability, BenchWorkDirRefusesDirectoriesItDidNotCreate) {
  TempDir tmp;
  write_data(tmp / "d.jsonl", 8, 26);
  ASSERT_EQ(run_zotune(train_cmd(golden("gpt2"), tmp / "d.jsonl", tmp / "run", 2, "--offload disk")).exit_code, 0);
  const fs::path weights = tmp / "run" / "disk-weights";
  const std::string before = slurp(weights / "block-00000.bin");
  fs::copy(golden("gpt2"), tmp / "m");
  auto bench = [&](const fs::path& work, const fs::path& model = golden("gpt2")) {
    return run_zotune("bench --model " + quote(model) + " --batch-size 1 --seq-len 4 --steps 1 --offload disk --work-dir " +
                      quote(work));
  };
  auto r = bench(weights);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "inside the training run")) << r.output;
  EXPECT_EQ(slurp(weights / "block-00000.bin"), before);
  r = bench(tmp / "run" / "scratch");  // a new folder inside a run
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "run" / "scratch"));
  fs::create_directories(tmp / "copy");
  fs::copy(weights, tmp / "copy");  // a working copy elsewhere
  r = bench(tmp / "copy");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "not empty and zotune bench did not create it (it holds a disk-tier working copy")) << r.output;
  r = bench(tmp / "m");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "(it holds a model)")) << r.output;
  r = bench(tmp / "m" / "work", tmp / "m");  // inside the --model directory
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "m" / "work"));
  // A new directory: created, marked, and removed after.
  r = bench(tmp / "fresh");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "fresh"));
  // An empty directory is marked and used; so is one an earlier bench marked
  // (killed before its clean-up).
  fs::create_directories(tmp / "empty");
  EXPECT_FALSE(claim_bench_work_dir(tmp / "empty", golden("gpt2")));
  EXPECT_TRUE(fs::exists(tmp / "empty" / kBenchMarkFile));
  spit(tmp / "empty" / "block-00000.bin", "stale");
  EXPECT_FALSE(claim_bench_work_dir(tmp / "empty", golden("gpt2")));
  EXPECT_TRUE(claim_bench_work_dir(tmp / "new" / "work", golden("gpt2")));
  EXPECT_TRUE(fs::exists(tmp / "new" / "work" / kBenchMarkFile));
}

// ---- 5. The first signal ends a step at its next block boundary: the
// abandoned step leaves the weights of the steps done, exactly.
TEST(Reliability, AStepStoppedAtABlockBoundaryLeavesTheWeightsOfTheStepsDone) {
  for (const char* name : {"gpt2", "llama"})  // tied and untied head
    for (const DType storage : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::string(name) + " " + std::string(dtype_name(storage)));
      auto arch = load_architecture(golden(name));
      Checkpoint ckpt(golden(name));
      auto store = [&]() -> std::unique_ptr<ParamStore> {
        if (storage == DType::F32) return std::make_unique<RamStore>(*arch, ckpt);
        return std::make_unique<LowBitRamStore>(*arch, ckpt, storage);
      };
      auto weights = [&](const ParamStore& s) {
        std::vector<float> w;
        for (std::size_t id = 0; id < arch->tensors().size(); ++id) {
          std::vector<float> t(static_cast<std::size_t>(arch->tensors()[id].numel()));
          s.read_tensor(static_cast<int>(id), t.data());
          w.insert(w.end(), t.begin(), t.end());
        }
        return w;
      };
      MezoOptions mo;
      mo.lr = 1e-3f;
      mo.eps = 1e-3f;
      mo.weight_decay = 0.1f;
      const Batch batch = testing::random_lm_batch(arch->config().vocab_size, 2, 6, 3);
      // The weights after 2 steps, and the third step and weights after it.
      auto ra = store(), rb = store();
      ZoEngine a(*arch, *ra, mo, 9), b(*arch, *rb, mo, 9);
      for (int t = 0; t < 2; ++t) a.step(t, 4, batch);
      a.flush();
      for (int t = 0; t < 2; ++t) b.step(t, 4, batch);
      const StepResult third = b.step(2, 4, batch);
      b.flush();
      const int N = arch->num_blocks();
      for (const int stop_at : {1, N - 1}) {  // after the embedding's block; before the head's
        auto rc = store();
        ZoEngine c(*arch, *rc, mo, 9);
        for (int t = 0; t < 2; ++t) c.step(t, 4, batch);
        int calls = 0;
        c.set_stop_check([&] { return calls++ == stop_at; });
        try {
          c.step(2, 4, batch);
          ADD_FAILURE() << "the step was not stopped";
        } catch (const StepInterrupted& i) {
          EXPECT_EQ(i.step, 3);
          EXPECT_EQ(i.block, stop_at);
        }
        EXPECT_FALSE(c.pending().has_value());
        EXPECT_TRUE(weights(*rc) == weights(*ra)) << "stopped before block " << stop_at;
        // Redoing the step continues the run exactly.
        c.set_stop_check({});
        const StepResult again = c.step(2, 4, batch);
        EXPECT_EQ(again.loss_plus, third.loss_plus);
        EXPECT_EQ(again.grad, third.grad);
        c.flush();
        EXPECT_TRUE(weights(*rc) == weights(*rb));
      }
    }
}

}  // namespace
}  // namespace zotune
