#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "base/philox.h"
#include "model/forward.h"

namespace zotune {

int32_t pick_token(std::span<const float> logits, const SamplingOptions& opt, float draw) {
  const auto n = static_cast<int64_t>(logits.size());
  check(n > 0, "empty logits");
  if (opt.temperature <= 0.0f)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  // Candidates sorted by logit, cut by top-k, then by cumulative probability top-p.
  std::vector<int32_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t k = opt.top_k > 0 ? std::min(opt.top_k, n) : n;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
  idx.resize(static_cast<std::size_t>(k));
  std::vector<double> p(idx.size());
  const double top = logits[idx[0]] / opt.temperature;
  double sum = 0;
  for (std::size_t i = 0; i < idx.size(); ++i) sum += p[i] = std::exp(logits[idx[i]] / opt.temperature - top);
  std::size_t keep = idx.size();
  if (opt.top_p < 1.0f) {
    // HF keeps the smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0;
    for (std::size_t i = 0; i < idx.size(); ++i) {
      cum += p[i] / sum;
      if (cum >= opt.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (std::size_t i = 0; i < keep; ++i) mass += p[i];
  double target = static_cast<double>(draw) * mass, acc = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (target < acc) return idx[i];
  }
  return idx[keep - 1];
}

GenerationResult generate(const Architecture& arch, ParamPtrs w, std::span<const int32_t> prompt,
                          const SamplingOptions& opt,
                          const std::function<std::string(std::span<const int32_t>)>& decode,
                          const std::function<void(int32_t)>& on_token) {
  check(!prompt.empty(), "generation needs a non-empty prompt");
  check(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  check(opt.top_p > 0.0f && opt.top_p <= 1.0f, "top_p must be in (0, 1]");
  check(opt.temperature >= 0.0f, "temperature must be >= 0");
  const ModelConfig& c = arch.config();
  int64_t capacity = static_cast<int64_t>(prompt.size()) + opt.max_new_tokens;
  if (c.max_positions > 0) {
    check(static_cast<int64_t>(prompt.size()) <= c.max_positions, "the prompt has ", prompt.size(),
          " tokens; the model takes at most ", c.max_positions);
    capacity = std::min(capacity, c.max_positions);
  }
  KVCache cache(c.num_layers, 1, capacity, c.kv_dim());
  ForwardPass pass(arch);
  std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));
  GenerationResult res;
  res.stop_reason = "max_new_tokens";
  std::vector<int32_t> all(prompt.begin(), prompt.end());
  const std::array<uint32_t, 2> key{static_cast<uint32_t>(opt.seed), static_cast<uint32_t>(opt.seed >> 32)};

  pass.start_cached(prompt.data(), nullptr, 1, static_cast<int64_t>(prompt.size()), cache);
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    pass.run_body(w);
    const int64_t last = pass.T() - 1;
    pass.logits(w, &last, 1, logits.data());
    pass.commit_cache();
    const float draw = uniform01(Philox4x32::block({static_cast<uint32_t>(step), 0, 0, 0x5A3Bu}, key)[0]);
    const int32_t next = pick_token(logits, opt, draw);
    res.new_ids.push_back(next);
    all.push_back(next);
    if (on_token) on_token(next);
    if (std::find(opt.eos_ids.begin(), opt.eos_ids.end(), next) != opt.eos_ids.end()) {
      res.stop_reason = "eos";
      break;
    }
    if (!opt.stop_strings.empty() && decode) {
      const std::string text = decode(std::span<const int32_t>(all).subspan(prompt.size()));
      if (std::any_of(opt.stop_strings.begin(), opt.stop_strings.end(),
                      [&](const std::string& s) { return !s.empty() && text.find(s) != std::string::npos; })) {
        res.stop_reason = "stop_string";
        break;
      }
    }
    if (step + 1 == opt.max_new_tokens) break;
    if (cache.length >= cache.capacity) {
      res.stop_reason = "context_full";
      break;
    }
    pass.start_cached(&next, nullptr, 1, 1, cache);
  }
  return res;
}

}  // namespace zotune
