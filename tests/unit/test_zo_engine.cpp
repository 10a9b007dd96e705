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
#include "model/model.h"
#include "store/param_store.h"
#include "store/store_factory.h"
#include "test_util.h"
#include "train/engine.h"
#include "train/update_log.h"
#include "zo/replay.h"

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

// A record with two terms (two directions in one step) equals its terms
// applied one after the other (weight decay with the first), bit for bit, in
// both codecs; the update log keeps its terms.
TEST(ZoUpdate, TermsApplyInOrderAndRoundTripTheLog) {
  const fs::path model = testing::golden_dir() / "qwen3";
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  UpdateRecord two(1, 101, 1e-2f, 0.7f);
  two.terms.push_back({202, -0.4f});
  const std::vector<UpdateRecord> one_by_one{UpdateRecord(1, 101, 1e-2f, 0.7f), UpdateRecord(2, 202, 1e-2f, -0.4f)};
  for (DType storage : {DType::F32, DType::BF16}) {
    StoreOptions so;
    so.offload = storage == DType::F32 ? Offload::None : Offload::Ram;
    so.storage_dtype = storage;
    auto a = make_store(*arch, ckpt, so), b = make_store(*arch, ckpt, so), c = make_store(*arch, ckpt, so);
    replay(*a, kernels::ZDist::Gaussian, 0.0f, {two});
    replay(*b, kernels::ZDist::Gaussian, 0.0f, one_by_one);
    replay(*c, kernels::ZDist::Gaussian, 0.0f, {one_by_one[0]});
    bool moved = false;
    for (std::size_t i = 0; i < arch->tensors().size(); ++i) {
      const auto n = static_cast<std::size_t>(arch->tensors()[i].numel());
      std::vector<float> wa(n), wb(n), wc(n);
      a->read_tensor(static_cast<int>(i), wa.data());
      b->read_tensor(static_cast<int>(i), wb.data());
      c->read_tensor(static_cast<int>(i), wc.data());
      EXPECT_EQ(0, std::memcmp(wa.data(), wb.data(), n * sizeof(float))) << arch->tensors()[i].name;
      moved = moved || std::memcmp(wa.data(), wc.data(), n * sizeof(float)) != 0;
    }
    EXPECT_TRUE(moved) << "the second term changed nothing";
  }
  testing::TempDir tmp;
  UpdateLog log;
  log.header = {{"format", "zotune-updates"}};
  log.records = {one_by_one[0], two};
  log.records[1].step = 2;
  write_update_log(tmp / "updates.jsonl", log);
  const UpdateLog back = read_update_log(tmp / "updates.jsonl");
  ASSERT_EQ(back.records.size(), 2u);
  ASSERT_EQ(back.records[1].terms.size(), 2u);
  EXPECT_EQ(back.records[1].terms[1].seed, 202u);
  EXPECT_EQ(back.records[1].terms[1].coeff, -0.4f);
  EXPECT_EQ(back.records[0].terms[0].coeff, 0.7f);
}

// The same run with 1, 2 and 3 threads gives bit-identical losses and weights,
// for every architecture and tier, on a right-padded 4 x 32 batch (the shape of
// the reported case: OpenBLAS's own threading changed the GEMMs' last bits)
// and a short unpadded one. Models are the `tiny` presets (widths 64, large
// enough for OpenBLAS to thread), two steps each.
struct ThreadCase {
  std::string arch;
  Offload offload;
  DType storage;
};
void PrintTo(const ThreadCase& c, std::ostream* os) { *os << c.arch << " " << dtype_name(c.storage); }

class ThreadCount : public ::testing::TestWithParam<ThreadCase> {};

TEST_P(ThreadCount, WeightsAndLossesAreBitIdentical) {
  const ThreadCase& c = GetParam();
  testing::TempDir tmp;
  const fs::path model = tmp / "model";
  init_checkpoint(architecture_preset(c.arch, "tiny"), DType::F32, 7, model);
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  testing::TokenStream seq(arch->config().vocab_size, 11);
  const Batch padded = language_model_batch({seq(32), seq(20), seq(25), seq(12)}, 0);
  const Batch short_batch = language_model_batch({seq(9), seq(9)}, 0);
  ASSERT_EQ(padded.B * padded.T, 128);

  struct Run {
    std::vector<double> losses;
    std::vector<float> weights;
  };
  auto run = [&](int threads) {
    set_compute_threads(threads);
    StoreOptions so;
    so.offload = c.offload;
    so.storage_dtype = c.storage;
    so.work_dir = tmp / ("disk-" + std::to_string(threads));
    auto store = make_store(*arch, ckpt, so);
    MezoOptions opt;
    opt.lr = 1e-3f;
    opt.eps = 1e-3f;
    opt.weight_decay = 0.01f;
    ZoEngine engine(*arch, *store, opt, 11);
    Run r;
    for (int64_t t = 0; t < 2; ++t) {
      const StepResult s = engine.step(t, 2, t == 0 ? padded : short_batch);
      r.losses.insert(r.losses.end(), {s.loss_plus, s.loss_minus});
    }
    r.losses.push_back(engine.evaluate(padded).loss);
    for (std::size_t i = 0; i < arch->tensors().size(); ++i) {
      std::vector<float> v(static_cast<std::size_t>(arch->tensors()[i].numel()));
      store->read_tensor(static_cast<int>(i), v.data());
      r.weights.insert(r.weights.end(), v.begin(), v.end());
    }
    return r;
  };
  const int before = compute_threads();
  const Run one = run(1);
  for (int threads : {2, 3}) {
    const Run other = run(threads);
    ASSERT_EQ(one.losses.size(), other.losses.size());
    for (std::size_t i = 0; i < one.losses.size(); ++i)
      EXPECT_EQ(one.losses[i], other.losses[i]) << threads << " threads, loss " << i;
    ASSERT_EQ(one.weights.size(), other.weights.size());
    EXPECT_EQ(0, std::memcmp(one.weights.data(), other.weights.data(), one.weights.size() * sizeof(float)))
        << threads << " threads";
  }
  set_compute_threads(before);
}

std::vector<ThreadCase> thread_cases() {
  std::vector<ThreadCase> v;
  for (const char* a : {"gpt2", "opt", "llama", "qwen3"}) {
    v.push_back({a, Offload::None, DType::F32});
    v.push_back({a, Offload::Ram, DType::BF16});
    v.push_back({a, Offload::Disk, DType::F32});
    v.push_back({a, Offload::Disk, DType::BF16});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Tiers, ThreadCount, ::testing::ValuesIn(thread_cases()), [](const auto& info) {
  const ThreadCase& c = info.param;
  const char* tier = c.offload == Offload::None ? "none" : c.offload == Offload::Ram ? "ram" : "disk";
  return c.arch + "_" + tier + "_" + std::string(dtype_name(c.storage));
});

}  // namespace
}  // namespace zotune
