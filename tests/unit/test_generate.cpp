// Sampling and stopping rules of generation, on hand-made logits and a golden model.
#include <gtest/gtest.h>

#include <map>

#include "model/generate.h"
#include "model/model.h"
#include "test_util.h"

namespace zotune {
namespace {

TEST(PickToken, GreedyTopKTopPAndTemperature) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -3.0f, 0.5f};
  SamplingOptions greedy;
  EXPECT_EQ(pick_token(logits, greedy, 0.99f), 1);
  SamplingOptions s;
  s.temperature = 1.0f;
  s.top_k = 1;
  for (float u : {0.0f, 0.5f, 0.999f}) EXPECT_EQ(pick_token(logits, s, u), 1) << "top-k 1 is greedy";
  s.top_k = 2;  // candidates 1 and 2 with p ~ 0.525 / 0.475
  EXPECT_EQ(pick_token(logits, s, 0.1f), 1);
  EXPECT_EQ(pick_token(logits, s, 0.9f), 2);
  s.top_k = 0;
  s.top_p = 0.3f;  // the smallest prefix reaching 30% is token 1 alone
  for (float u : {0.0f, 0.7f, 0.999f}) EXPECT_EQ(pick_token(logits, s, u), 1);
  // Sampling frequencies follow softmax(logits / T): token 3 is never drawn at T = 0.5 in 1000 draws.
  s.top_p = 1.0f;
  s.temperature = 0.5f;
  std::map<int, int> counts;
  for (int i = 0; i < 1000; ++i) counts[pick_token(logits, s, (i + 0.5f) / 1000.0f)]++;
  EXPECT_EQ(counts[3], 0);
  EXPECT_NEAR(counts[1] / 1000.0, 0.5288, 0.01);  // e^4 / (e^4 + e^3.8 + e^1 + e^0.2 + e^-6) = 0.5288
}

TEST(Generate, SeededSamplingIsReproducibleAndEosStops) {
  LoadedModel m = load_model(testing::golden_dir() / "llama");
  const std::vector<int32_t> prompt = {5, 9, 17, 33};
  SamplingOptions s;
  s.temperature = 1.0f;
  s.max_new_tokens = 12;
  s.seed = 42;
  auto a = generate(*m.arch, m.weights->ptrs(), prompt, s);
  auto b = generate(*m.arch, m.weights->ptrs(), prompt, s);
  EXPECT_EQ(a.new_ids, b.new_ids);
  EXPECT_EQ(a.new_ids.size(), 12u);
  s.seed = 43;
  auto c = generate(*m.arch, m.weights->ptrs(), prompt, s);
  EXPECT_NE(a.new_ids, c.new_ids);
  // Declaring the 3rd sampled token an EOS stops right there.
  s.seed = 42;
  s.eos_ids = {a.new_ids[2]};
  auto d = generate(*m.arch, m.weights->ptrs(), prompt, s);
  EXPECT_EQ(d.stop_reason, "eos");
  EXPECT_LE(d.new_ids.size(), 3u);
  EXPECT_EQ(d.new_ids.back(), a.new_ids[2]);
}

}  // namespace
}  // namespace zotune
