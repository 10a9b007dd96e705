// The ZO engine (MeZO-SGD executed as ZO2 does: dual forward, deferred fused
// update) against (1) PyTorch MeZO trajectories with z = 1 (tests/golden/mezo,
// tools/mezo_reference.py) and (2) a plain scalar re-implementation of the MeZO
// step with the same counter RNG, written here from the stream layout text.
#include <gtest/gtest.h>
#include <omp.h>

#include <cblas.h>

#include <cmath>
#include <set>

#include "base/philox.h"
#include "base/threads.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "store/param_store.h"
#include "test_util.h"
#include "train/engine.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;

double rel(double a, double b) { return std::fabs(a - b) / std::max(1e-30, std::fabs(b)); }

class MezoGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MezoGolden, OnesTrajectoryMatchesPyTorchReference) {
  const fs::path gdir = testing::golden_dir() / "mezo";
  Json g = read_json_file(gdir / (GetParam() + ".json"));
  const fs::path model = testing::source_dir() / g["model"].get<std::string>();
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  RamStore store(*arch, ckpt);

  std::set<std::string> no_decay;
  for (auto& n : g["no_decay"]) no_decay.insert(n.get<std::string>());
  for (const auto& spec : arch->tensors())
    EXPECT_EQ(!spec.decays(), no_decay.count(spec.name) == 1) << spec.name << ": decay rule differs";

  MezoOptions opt;
  opt.dist = kernels::ZDist::Ones;
  opt.lr = g["lr"].get<float>();
  opt.eps = g["eps"].get<float>();
  opt.weight_decay = g["weight_decay"].get<float>();
  ZoEngine engine(*arch, store, opt, 1234);
  Batch batch = language_model_batch(g["data"].get<std::vector<std::vector<int32_t>>>(), g["pad_id"].get<int32_t>());

  EXPECT_LE(rel(engine.forward_unflushed(batch).loss, g["initial_loss"].get<double>()), 1e-5);
  const int64_t steps = g["steps"].get<int64_t>();
  for (int64_t t = 0; t < steps; ++t) {
    StepResult r = engine.step(t, steps, batch);
    const Json& want = g["trajectory"][static_cast<std::size_t>(t)];
    EXPECT_LE(rel(r.loss_plus, want["loss_plus"].get<double>()), 1e-5) << "step " << t + 1;
    EXPECT_LE(rel(r.loss_minus, want["loss_minus"].get<double>()), 1e-5) << "step " << t + 1;
    EXPECT_LE(rel(r.grad, want["projected_grad"].get<double>()), 2e-3) << "step " << t + 1;
  }
  EXPECT_LE(rel(engine.evaluate(batch).loss, g["final_loss"].get<double>()), 1e-5);

  SafetensorsFile final_weights(gdir / g["final_weights"].get<std::string>());
  double worst = 0;
  for (std::size_t i = 0; i < arch->tensors().size(); ++i) {
    const auto& spec = arch->tensors()[i];
    TensorView want = final_weights.view(spec.name);
    std::vector<float> got(static_cast<std::size_t>(spec.numel()));
    store.read_tensor(static_cast<int>(i), got.data());
    for (int64_t k = 0; k < spec.numel(); ++k) worst = std::max(worst, std::fabs(double(got[k]) - double(want.f32()[k])));
  }
  EXPECT_LE(worst, 1e-5) << "max abs weight difference after " << steps << " steps";
}

INSTANTIATE_TEST_SUITE_P(Cases, MezoGolden,
                         ::testing::Values("gpt2", "gpt2_wd", "opt", "llama", "qwen3", "qwen3_wd"),
                         [](const auto& info) { return info.param; });

// ---- scalar re-implementation of MeZO with the counter RNG

// z of element i of tensor `id` for step seed `seed`, straight from the layout
// documented in src/kernels/zo_kernels.h, in double.
double scalar_z(uint64_t seed, uint32_t id, int64_t i) {
  const int64_t G = i / 64, r = (i % 64) / 16, k = i % 16;
  const uint64_t n = static_cast<uint64_t>(G * 16 + k);
  auto w = Philox4x32::block<kernels::kZoPhiloxRounds>({static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32), id, 0},
                             {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const std::size_t p = static_cast<std::size_t>(r / 2) * 2;
  const double u1 = (static_cast<double>(w[p] >> 8) + 1.0) / 16777216.0;
  const double u2 = static_cast<double>(w[p + 1] >> 8) / 16777216.0;
  const double rad = std::sqrt(-2.0 * std::log(u1));
  return r % 2 == 0 ? rad * std::cos(2 * M_PI * u2) : rad * std::sin(2 * M_PI * u2);
}

TEST(ZoEngine, EqualsScalarMezoWithTheSameRng) {
  const fs::path model = testing::golden_dir() / "qwen3";  // tied head, q/k norms, GQA
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  RamStore store(*arch, ckpt);
  MezoOptions opt;
  opt.lr = 1e-3f;
  opt.eps = 1e-3f;
  opt.weight_decay = 0.05f;
  const uint64_t run_seed = 77;
  ZoEngine engine(*arch, store, opt, run_seed);
  Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8, 12}, {7, 3, 99, 14, 6}}, 0);

  // The scalar model: weights as double-checked fp32 vectors, two full MeZO steps.
  const auto& table = arch->tensors();
  std::vector<std::vector<float>> w(table.size()), wp(table.size()), wm(table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    w[i].resize(static_cast<std::size_t>(table[i].numel()));
    store.read_tensor(static_cast<int>(i), w[i].data());
  }
  ForwardPass pass(*arch);
  std::vector<float> logits;
  auto loss_of = [&](const std::vector<std::vector<float>>& W) {
    std::vector<const float*> ptrs(W.size());
    for (std::size_t i = 0; i < W.size(); ++i) ptrs[i] = W[i].data();
    pass.start(batch.ids.data(), batch.mask.data(), batch.B, batch.T);
    pass.run_body(ptrs);
    logits.resize(batch.rows.size() * static_cast<std::size_t>(arch->config().vocab_size));
    pass.logits(ptrs, batch.rows.data(), static_cast<int64_t>(batch.rows.size()), logits.data());
    AlignedBuffer<float> scratch;
    return batch_loss(batch, logits.data(), arch->config().vocab_size, scratch).loss;
  };
  for (int64_t t = 0; t < 2; ++t) {
    const uint64_t seed = step_seed(run_seed, t);
    for (std::size_t i = 0; i < table.size(); ++i) {
      wp[i] = w[i];
      wm[i] = w[i];
      for (std::size_t k = 0; k < w[i].size(); ++k) {
        const float z = static_cast<float>(scalar_z(seed, static_cast<uint32_t>(i), static_cast<int64_t>(k)));
        wp[i][k] = w[i][k] + opt.eps * z;
        wm[i][k] = w[i][k] - opt.eps * z;
      }
    }
    const double lp = loss_of(wp), lm = loss_of(wm);
    const double g = (lp - lm) / (2.0 * opt.eps);
    StepResult r = engine.step(t, 2, batch);
    EXPECT_NEAR(r.loss_plus, lp, 1e-6 * std::fabs(lp)) << "step " << t;
    EXPECT_NEAR(r.loss_minus, lm, 1e-6 * std::fabs(lm)) << "step " << t;
    EXPECT_NEAR(r.grad, g, 1e-3 * std::fabs(g) + 1e-3) << "step " << t;
    for (std::size_t i = 0; i < table.size(); ++i) {
      const float wd = table[i].decays() ? opt.weight_decay : 0.0f;
      for (std::size_t k = 0; k < w[i].size(); ++k) {
        const double z = scalar_z(seed, static_cast<uint32_t>(i), static_cast<int64_t>(k));
        w[i][k] = static_cast<float>(w[i][k] - opt.lr * (r.grad * z + wd * w[i][k]));
      }
    }
  }
  engine.flush();
  double worst = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    std::vector<float> got(w[i].size());
    store.read_tensor(static_cast<int>(i), got.data());
    for (std::size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::fabs(double(got[k]) - double(w[i][k])));
  }
  EXPECT_LE(worst, 1e-6);
}

// One-sided: the second pass runs on the unperturbed weights and g = (L+ - L0) / eps.
TEST(ZoEngine, OneSidedEstimateUsesTheUnperturbedLoss) {
  const fs::path model = testing::golden_dir() / "opt";
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  RamStore store(*arch, ckpt);
  MezoOptions opt;
  opt.one_sided = true;
  opt.dist = kernels::ZDist::Rademacher;
  opt.lr = 1e-3f;
  opt.eps = 1e-2f;
  ZoEngine engine(*arch, store, opt, 9);
  Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8}, {7, 3, 99, 14}}, 1);
  const double l0 = engine.forward_unflushed(batch).loss;
  StepResult r = engine.step(0, 1, batch);
  EXPECT_DOUBLE_EQ(r.loss_minus, l0);
  EXPECT_NE(r.loss_plus, l0);
  EXPECT_NEAR(r.grad, (r.loss_plus - l0) / opt.eps, 1e-9 * std::fabs(r.grad));
  // Rademacher z is +-1: after the update every weight moved by exactly lr*|g| (no decay).
  std::vector<float> before(static_cast<std::size_t>(arch->tensors()[0].numel()));
  store.read_tensor(0, before.data());
  engine.flush();
  std::vector<float> after(before.size());
  store.read_tensor(0, after.data());
  const float step = static_cast<float>(opt.lr * std::fabs(r.grad));
  for (std::size_t k = 0; k < 64; ++k) EXPECT_NEAR(std::fabs(after[k] - before[k]), step, 1e-6f + 1e-6f * std::fabs(before[k]));
}

TEST(Schedule, ConstantAndLinearWithWarmupAsHuggingFace) {
  MezoOptions o;
  o.lr = 1.0f;
  EXPECT_FLOAT_EQ(learning_rate(o, 0, 10), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(o, 9, 10), 1.0f);
  o.warmup_steps = 4;
  EXPECT_FLOAT_EQ(learning_rate(o, 0, 10), 0.0f);
  EXPECT_FLOAT_EQ(learning_rate(o, 2, 10), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate(o, 4, 10), 1.0f);
  o.schedule = ScheduleKind::Linear;
  EXPECT_FLOAT_EQ(learning_rate(o, 4, 10), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(o, 7, 10), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate(o, 10, 10), 0.0f);
  EXPECT_NE(step_seed(1, 0), step_seed(1, 1));
  EXPECT_NE(step_seed(1, 0), step_seed(2, 0));
  // step_seed(s, t) is output t+1 of a splitmix64 generator seeded with s; for
  // s = 0 these are the published first outputs of splitmix64 (Vigna's reference).
  EXPECT_EQ(step_seed(0, 0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(step_seed(0, 1), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(step_seed(0, 2), 0x06C45D188009454Full);
}

// The same steps with 1 and 2 threads give bit-identical weights.
TEST(ZoEngine, ThreadCountDoesNotChangeResults) {
  const fs::path model = testing::golden_dir() / "llama";
  Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8, 12, 19, 23}, {7, 3, 99, 14, 6}}, 0);
  auto run = [&](int threads) {
    set_compute_threads(threads);
    auto arch = load_architecture(model);
    Checkpoint ckpt(model);
    RamStore store(*arch, ckpt);
    MezoOptions opt;
    opt.lr = 1e-4f;
    opt.weight_decay = 0.01f;
    ZoEngine engine(*arch, store, opt, 5);
    for (int64_t t = 0; t < 4; ++t) engine.step(t, 4, batch);
    engine.flush();
    std::vector<float> all;
    for (std::size_t i = 0; i < arch->tensors().size(); ++i) {
      std::vector<float> v(static_cast<std::size_t>(arch->tensors()[i].numel()));
      store.read_tensor(static_cast<int>(i), v.data());
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const int before = compute_threads();
  auto one = run(1), two = run(2);
  set_compute_threads(before);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
}

}  // namespace
}  // namespace zotune
