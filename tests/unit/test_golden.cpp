// Every architecture against golden logits, loss and greedy continuations made
// by the independent PyTorch references in tools/ (see tests/golden/README.md).
// Tolerances: logits 1e-4 of max |golden logit| over unpadded positions; loss
// 1e-5 relative; generation identical ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/model.h"
#include "test_util.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> golden_cases() {
  std::vector<std::string> r;
  for (auto& e : fs::directory_iterator(testing::golden_dir()))
    if (fs::exists(e.path() / "expected.safetensors")) r.push_back(e.path().filename().string());
  std::sort(r.begin(), r.end());
  return r;
}

struct Input {
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

Input read_input(const fs::path& file) {
  Json j = read_json_file(file);
  Input in;
  in.B = static_cast<int64_t>(j["input_ids"].size());
  in.T = static_cast<int64_t>(j["input_ids"][0].size());
  for (auto& row : j["input_ids"])
    for (auto& v : row) in.ids.push_back(v.get<int32_t>());
  for (auto& row : j["attention_mask"])
    for (auto& v : row) in.mask.push_back(static_cast<uint8_t>(v.get<int>()));
  return in;
}

// max |a - b| over the given rows of width V, and max |b| over them.
std::pair<double, double> row_error(const float* a, const float* b, const std::vector<int64_t>& rows, int64_t V) {
  double err = 0, scale = 0;
  for (int64_t r : rows)
    for (int64_t v = 0; v < V; ++v) {
      err = std::max(err, std::fabs(double(a[r * V + v]) - double(b[r * V + v])));
      scale = std::max(scale, std::fabs(double(b[r * V + v])));
    }
  return {err, scale};
}

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return testing::golden_dir() / GetParam(); }
};

TEST_P(Golden, LogitsAndLossMatchReference) {
  LoadedModel m = load_model(dir());
  Input in = read_input(dir() / "input.json");
  SafetensorsFile expected(dir() / "expected.safetensors");
  const int64_t V = m.arch->config().vocab_size;
  ASSERT_EQ(expected.view("logits").shape, (Shape{in.B, in.T, V}));

  ForwardPass pass(*m.arch);
  pass.start(in.ids.data(), in.mask.data(), in.B, in.T);
  pass.run_body(m.weights->ptrs());
  std::vector<float> logits(static_cast<std::size_t>(in.B * in.T * V));
  pass.all_logits(m.weights->ptrs(), logits.data());

  std::vector<int64_t> real_rows;
  for (int64_t r = 0; r < in.B * in.T; ++r)
    if (in.mask[static_cast<std::size_t>(r)]) real_rows.push_back(r);
  auto [err, scale] = row_error(logits.data(), expected.view("logits").f32(), real_rows, V);
  EXPECT_GT(scale, 0.5) << "golden logits are too small to test anything";
  EXPECT_LE(err, 1e-4 * scale) << GetParam() << ": max abs logit error " << err << " (max |logit| " << scale << ")";

  const double loss = next_token_loss(logits.data(), in.ids.data(), in.mask.data(), in.B, in.T, V);
  const double want = *expected.view("loss").f32();
  EXPECT_NEAR(loss, want, 1e-5 * std::fabs(want)) << GetParam();
}

TEST_P(Golden, PaddedRowsEqualSequencesRunAlone) {
  LoadedModel m = load_model(dir());
  Input in = read_input(dir() / "input.json");
  SafetensorsFile expected(dir() / "expected.safetensors");
  const int64_t V = m.arch->config().vocab_size;

  ForwardPass batched(*m.arch);
  batched.start(in.ids.data(), in.mask.data(), in.B, in.T);
  batched.run_body(m.weights->ptrs());
  std::vector<float> all(static_cast<std::size_t>(in.B * in.T * V));
  batched.all_logits(m.weights->ptrs(), all.data());

  for (int64_t b = 0; b < in.B; ++b) {
    std::vector<int32_t> alone;
    std::vector<int64_t> batch_rows;
    for (int64_t t = 0; t < in.T; ++t)
      if (in.mask[static_cast<std::size_t>(b * in.T + t)]) {
        alone.push_back(in.ids[static_cast<std::size_t>(b * in.T + t)]);
        batch_rows.push_back(b * in.T + t);
      }
    const int64_t L = static_cast<int64_t>(alone.size());
    ForwardPass single(*m.arch);
    single.start(alone.data(), nullptr, 1, L);
    single.run_body(m.weights->ptrs());
    std::vector<float> got(static_cast<std::size_t>(L * V));
    single.all_logits(m.weights->ptrs(), got.data());

    TensorView want = expected.view("logits_unpadded_" + std::to_string(b));
    ASSERT_EQ(want.shape, (Shape{L, V}));
    std::vector<int64_t> rows(static_cast<std::size_t>(L));
    for (int64_t i = 0; i < L; ++i) rows[static_cast<std::size_t>(i)] = i;
    auto [err, scale] = row_error(got.data(), want.f32(), rows, V);
    EXPECT_LE(err, 1e-4 * scale) << GetParam() << " row " << b << " alone";

    // Batched rows vs the same sequence alone: padding and batch invariance.
    double inv = 0;
    for (int64_t i = 0; i < L; ++i)
      for (int64_t v = 0; v < V; ++v)
        inv = std::max(inv, std::fabs(double(all[batch_rows[i] * V + v]) - double(got[i * V + v])));
    EXPECT_LE(inv, 1e-5 * scale) << GetParam() << " row " << b << ": batched vs alone";
  }
}

TEST_P(Golden, GreedyGenerationMatchesReference) {
  if (!fs::exists(dir() / "generate.json")) GTEST_FAIL() << "missing generate.json in " << dir();
  LoadedModel m = load_model(dir());
  Json g = read_json_file(dir() / "generate.json");
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> want = g["generated_ids"].get<std::vector<int32_t>>();
  SamplingOptions opt;
  opt.max_new_tokens = g["max_new_tokens"].get<int64_t>();
  GenerationResult r = generate(*m.arch, m.weights->ptrs(), prompt, opt);
  EXPECT_EQ(r.new_ids, want) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllCases, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) { return info.param; });

TEST(GoldenSet, CoversEveryArchitectureInBothDtypes) {
  auto cases = golden_cases();
  for (const char* c : {"gpt2", "opt", "opt_postln", "opt_proj", "llama", "llama3_rope", "qwen3", "gpt2_bf16",
                        "opt_bf16", "llama_bf16", "qwen3_bf16"})
    EXPECT_NE(std::find(cases.begin(), cases.end(), c), cases.end()) << "missing golden case " << c;
}

}  // namespace
}  // namespace zotune
