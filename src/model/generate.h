// Autoregressive generation with a KV cache: greedy or sampled (temperature,
// top-k, top-p) with a seeded counter RNG, stopping at EOS or a stop string.
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/architecture.h"

namespace zotune {

struct SamplingOptions {
  int64_t max_new_tokens = 32;
  float temperature = 0.0f;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;
  std::vector<int32_t> eos_ids;
  std::vector<std::string> stop_strings;
};

struct GenerationResult {
  std::vector<int32_t> new_ids;
  std::string stop_reason;  // "eos", "stop_string", "max_new_tokens", "context_full"
};

// `decode` turns ids into text (needed only for stop strings); `on_token` is
// called for each new token as it is produced (for streaming output).
GenerationResult generate(const Architecture& arch, ParamPtrs w, std::span<const int32_t> prompt,
                          const SamplingOptions& opt,
                          const std::function<std::string(std::span<const int32_t>)>& decode = {},
                          const std::function<void(int32_t)>& on_token = {});

// Picks the next token from one row of logits (exposed for tests). `draw` is a
// uniform number in [0, 1) used only when sampling.
int32_t pick_token(std::span<const float> logits, const SamplingOptions& opt, float draw);

}  // namespace zotune
