// The memory plan against reality: the predicted peak RSS of a training run
// (fp32 RAM tier and disk tier) vs the peak measured in a fresh child process
// (this test binary re-executed, so nothing of the parent's heap is counted),
// within 10%. Then huge configurations answered fast with the sizes a hand
// computation gives, and the tier choice under budgets.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "train/memory_plan.h"
#include "store/store_factory.h"
#include "test_util.h"
#include "train/engine.h"

extern char** environ;

namespace zotune {
namespace {

namespace fs = std::filesystem;

// "none", "disk", "ram-bf16", "disk-bf16"
Offload offload_from(const std::string& s) {
  if (s.rfind("disk", 0) == 0) return Offload::Disk;
  return s.rfind("ram", 0) == 0 ? Offload::Ram : Offload::None;
}
DType dtype_from(const std::string& s) { return s.find("bf16") != std::string::npos ? DType::BF16 : DType::F32; }

// The child: a training run as the trainer does it (checkpoint kept open, store
// from the factory, steps, flush), reporting its peak RSS. It runs before gtest
// starts when this binary is re-executed with ZOTUNE_PLAN_CHILD set.
void run_plan_child(const char* args) {
  Json a = Json::parse(args);
  const fs::path model = a["model"].get<std::string>();
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  StoreOptions so;
  so.offload = offload_from(a["offload"].get<std::string>());
  so.storage_dtype = dtype_from(a["offload"].get<std::string>());
  so.resident_blocks = a["resident"].get<int>();
  so.work_dir = a["work"].get<std::string>();
  auto store = make_store(*arch, ckpt, so);
  MezoOptions mo;
  mo.lr = 1e-4f;
  mo.eps = 1e-3f;
  mo.weight_decay = 0.01f;
  ZoEngine e(*arch, *store, mo, 1);
  const Batch batch = testing::random_lm_batch(arch->config().vocab_size, a["B"].get<int64_t>(), a["T"].get<int64_t>(), 7919);
  for (int t = 0; t < 2; ++t) e.step(t, 2, batch);
  e.flush();
  store->sync();
  std::ofstream(a["out"].get<std::string>()) << peak_rss_bytes();
}

const int plan_child_mode = [] {
  const char* args = std::getenv("ZOTUNE_PLAN_CHILD");
  if (args == nullptr) return 0;
  int rc = 0;
  try {
    run_plan_child(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plan child: %s\n", e.what());
    rc = 1;
  }
  std::_Exit(rc);
}();

uint64_t child_peak_rss(const Json& args) {
  const std::string env = "ZOTUNE_PLAN_CHILD=" + args.dump();
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(env.c_str()));
  envp.push_back(nullptr);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  char* argv[] = {exe.data(), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(0, posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream f(args["out"].get<std::string>());
  uint64_t peak = 0;
  f >> peak;
  return peak;
}

fs::path init_model(const testing::TempDir& tmp, const std::string& arch, const std::string& preset) {
  const fs::path out = tmp / (arch + "-" + preset);
  auto r = testing::run_zotune("init --arch " + arch + " --preset " + preset + " --out " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

struct RssCase {
  std::string arch, preset, offload;
  int resident;
  int64_t B, T;
};

class PlanVsRss : public ::testing::TestWithParam<RssCase> {};

TEST_P(PlanVsRss, PredictsPeakRssWithin10Percent) {
  const RssCase& c = GetParam();
  testing::TempDir tmp;
  const fs::path model = init_model(tmp, c.arch, c.preset);
  Json args = {{"model", model.string()}, {"offload", c.offload}, {"resident", c.resident}, {"B", c.B},
               {"T", c.T},                {"work", (tmp / "work").string()},               {"out", (tmp / "rss").string()}};
  const uint64_t measured = child_peak_rss(args);
  ASSERT_GT(measured, 0u);

  auto arch = load_architecture(model);
  PlanInput in;
  in.batch = c.B;
  in.seq_len = c.T;
  in.offload = offload_from(c.offload);
  in.storage_dtype = dtype_from(c.offload);
  in.resident_blocks = c.resident;
  const MemoryPlan p = plan_memory(*arch, in, assumed_machine_constants());
  const double ratio = static_cast<double>(p.bytes.total()) / static_cast<double>(measured);
  std::printf("%s %s %s: predicted %.1f MB, measured %.1f MB (ratio %.3f)\n%s", c.arch.c_str(), c.preset.c_str(),
              c.offload.c_str(), static_cast<double>(p.bytes.total()) / 1048576.0, static_cast<double>(measured) / 1048576.0,
              ratio, plan_table(p).c_str());
  EXPECT_NEAR(ratio, 1.0, 0.10);
}

INSTANTIATE_TEST_SUITE_P(Presets, PlanVsRss,
                         ::testing::Values(RssCase{"gpt2", "tiny", "none", 1, 2, 32},
                                           RssCase{"llama", "tiny", "disk", 1, 2, 32},
                                           RssCase{"opt", "opt-125m", "none", 1, 2, 64},
                                           RssCase{"opt", "opt-125m", "ram-bf16", 1, 2, 64},
                                           RssCase{"opt", "opt-125m", "disk-bf16", 1, 2, 64},
                                           RssCase{"opt", "opt-125m", "disk", 1, 2, 64},
                                           RssCase{"opt", "opt-125m", "disk", 3, 2, 64}),
                         [](const auto& info) {
                           std::string n = info.param.arch + "_" + info.param.preset + "_" + info.param.offload + "_r" +
                                           std::to_string(info.param.resident);
                           for (char& ch : n)
                             if (ch == '-' || ch == '.') ch = '_';
                           return n;
                         });

Json llama3_70b() {
  return {{"model_type", "llama"},        {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 8192},
          {"num_hidden_layers", 80},      {"num_attention_heads", 64},            {"num_key_value_heads", 8},
          {"intermediate_size", 28672},   {"vocab_size", 128256},                 {"max_position_embeddings", 8192},
          {"rms_norm_eps", 1e-5},         {"rope_theta", 500000.0},               {"tie_word_embeddings", false},
          {"hidden_act", "silu"},         {"torch_dtype", "bfloat16"}};
}
Json opt_175b() {
  return {{"model_type", "opt"},          {"architectures", {"OPTForCausalLM"}},  {"hidden_size", 12288},
          {"num_hidden_layers", 96},      {"num_attention_heads", 96},            {"ffn_dim", 49152},
          {"vocab_size", 50272},          {"max_position_embeddings", 2048},      {"word_embed_proj_dim", 12288},
          {"do_layer_norm_before", true}, {"activation_function", "relu"},        {"enable_bias", true},
          {"tie_word_embeddings", true}};
}

TEST(MemoryPlan, HugeConfigsAnswerFastWithHandComputedSizes) {
  const auto t0 = std::chrono::steady_clock::now();
  auto llama = make_architecture(llama3_70b(), "llama-70b/config.json");
  auto opt = make_architecture(opt_175b(), "opt-175b/config.json");
  PlanInput in;
  in.batch = 1;
  in.seq_len = 512;
  in.offload = Offload::Ram;
  in.storage_dtype = DType::BF16;
  const MemoryPlan l = plan_memory(*llama, in, assumed_machine_constants());
  // Llama-3-70B by hand: embed + head 2*V*C, per layer 4 attention matrices
  // (C*C*2 + C*kv*2), 3 MLP matrices 3*C*I, 2 norms; final norm.
  const int64_t C = 8192, I = 28672, V = 128256, KV = 1024, L = 80;
  const int64_t layer = 2 * C * C + 2 * C * KV + 3 * C * I + 2 * C;
  const int64_t params = 2 * V * C + L * layer + C;
  EXPECT_EQ(l.params, params);
  EXPECT_EQ(l.bytes.weights, static_cast<uint64_t>(params) * 2);  // ~141 GB
  EXPECT_NEAR(static_cast<double>(l.bytes.weights) / 1e9, 141.1, 0.2);
  // Working copies: the low-bit tier is lean, one fp32 copy of the largest
  // block; the streamed embedding and head are not in any block.
  EXPECT_EQ(l.bytes.working, static_cast<uint64_t>(layer) * 4);
  // Streamed chunks: ~4 MB of weights per chunk, nothing of size V*C.
  EXPECT_LT(l.bytes.streaming, uint64_t{256} << 20);

  in.offload = Offload::Disk;
  in.resident_blocks = 2;
  const MemoryPlan ld = plan_memory(*llama, in, assumed_machine_constants());
  EXPECT_EQ(ld.bytes.weights, 0u);
  // bf16 block files: 4 staging buffers (2 resident + 2) of the largest block; one fp32 copy per resident block.
  const uint64_t lay = 4096 + (static_cast<uint64_t>(layer) * 2 + 4095) / 4096 * 4096;
  EXPECT_EQ(ld.bytes.staging, 4 * lay);
  EXPECT_EQ(ld.bytes.working, static_cast<uint64_t>(2 * layer) * 4);
  EXPECT_NEAR(static_cast<double>(ld.disk_bytes) / 1e9, params * 2 / 1e9, 0.1);

  in.offload = Offload::None;
  const MemoryPlan o = plan_memory(*opt, in, assumed_machine_constants());
  // OPT-175B: ~175e9 parameters, fp32 700 GB.
  EXPECT_NEAR(static_cast<double>(o.params) / 1e9, 175.0, 1.5);
  EXPECT_EQ(o.bytes.weights, static_cast<uint64_t>(o.params) * 4);  // fp32 (the checkpoint pages are dropped after loading)
  // W+ and W- of one layer; the tied embedding is streamed.
  const int64_t Co = 12288;
  // q, k, v, out (+ biases), fc1, fc2 (+ biases), two LayerNorms.
  const int64_t F = 49152;
  const int64_t opt_layer = 4 * Co * Co + 4 * Co + 2 * Co * F + F + Co + 2 * 2 * Co;
  EXPECT_EQ(o.bytes.working, static_cast<uint64_t>(2 * opt_layer) * 4);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  std::printf("%s%s", plan_table(ld).c_str(), plan_table(o).c_str());
}

TEST(MemoryPlan, ChoosesTheFastestTierThatFits) {
  auto llama = make_architecture(llama3_70b(), "llama-70b/config.json");
  PlanInput in;
  in.batch = 1;
  in.seq_len = 256;
  const auto mc = assumed_machine_constants();
  PlanChoice c = choose_plan(*llama, uint64_t{1000} << 30, in, mc);
  EXPECT_TRUE(c.fits);
  EXPECT_EQ(c.plan.input.offload, Offload::None) << c.why;
  c = choose_plan(*llama, uint64_t{200} << 30, in, mc);
  EXPECT_EQ(c.plan.input.offload, Offload::Ram) << c.why;
  EXPECT_EQ(c.plan.input.storage_dtype, DType::BF16);
  c = choose_plan(*llama, uint64_t{22} << 30, in, mc);
  EXPECT_TRUE(c.fits) << c.why;
  EXPECT_EQ(c.plan.input.offload, Offload::Disk) << c.why;
  EXPECT_LE(c.plan.bytes.total(), uint64_t{22} << 30);
  EXPECT_NE(c.why.find("--offload ram --storage-dtype bf16 needs"), std::string::npos) << c.why;
  c = choose_plan(*llama, uint64_t{1} << 30, in, mc);
  EXPECT_FALSE(c.fits);
  EXPECT_NE(c.why.find("nothing fits"), std::string::npos) << c.why;
  const Json j = plan_json(c.plan);
  EXPECT_EQ(j["bytes"]["total"].get<uint64_t>(), c.plan.bytes.total());
  EXPECT_EQ(j["offload"], "disk");
}

}  // namespace
}  // namespace zotune
