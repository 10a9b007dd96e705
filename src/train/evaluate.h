// Scoring evaluation examples with a model, as MeZO's run.py does it
// (Framework.one_step_pred):
//  - classification / multiple choice: each candidate's score is the mean
//    log-likelihood of its tokens after the prompt; with calibration (SFC) it is
//    the sum of those minus the sum over the same candidate after the
//    calibration prompt. The prediction is the first candidate with the highest
//    score; it is right if it is any correct candidate (ReCoRD has several).
//  - generation: greedy decoding from the prompt until the newline token or
//    EOS, at most max_new_tokens (and no further than the context); the decoded
//    text (special tokens skipped, the tokenizer's clean-up applied if it asks
//    for it) stripped of surrounding whitespace is the prediction, scored with
//    SQuAD F1 and exact match against every gold answer (data/metrics.h).
// Token sequences: encode(prompt, add_special_tokens) ++ encode(candidate,
// no special tokens), left-truncated to max_length keeping a leading BOS (data
// /dataset.h, append_prompt_answer); a generation prompt is cut to
// max_length - max_new_tokens the same way.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "data/eval_protocol.h"
#include "model/architecture.h"
#include "model/shared_prefix.h"

namespace zotune {

class Tokenizer;
class ParamStore;

struct EvalSettings {
  int64_t max_length = 2048;    // tokens per scored sequence / prompt + generation
  int64_t max_new_tokens = 50;  // generation
};

struct CandidateScore {
  std::string text;          // prompt + text is the scored sequence's text
  double score = 0;          // mean log-likelihood of its tokens (calibrated: sum - sum after the SFC prompt)
  int64_t tokens = 0;        // scored tokens
  double calibration = 0;    // with SFC: the sum of log-likelihoods after the calibration prompt
};

struct EvalResult {
  std::vector<CandidateScore> candidates;  // generation: the one generated continuation
  int32_t predicted = -1;                  // classification: the chosen candidate
  std::string prediction;                  // generation: the predicted answer
  double accuracy = 0, f1 = 0, em = 0;     // per-example metrics (accuracy: classification; f1/em: generation)
  bool truncated = false;                  // a sequence was cut to max_length
};

class Evaluator {
 public:
  Evaluator(const Architecture& arch, ParamPtrs weights, const Tokenizer& tok, EvalSettings settings);
  EvalResult run(const EvalExample& e);
  // log p of each answer token after the prompt (the scored ones; the first
  // has no predictor if the prompt is empty and there is no BOS).
  std::vector<double> answer_logprobs(std::span<const int32_t> prompt, std::span<const int32_t> answer,
                                      bool& truncated);
  // The same for several answers after one prompt, in one batch whose
  // sequences share the prompt's forward (model/shared_prefix.h).
  std::vector<std::vector<double>> answers_logprobs(std::span<const int32_t> prompt,
                                                    std::span<const std::vector<int32_t>> answers, bool& truncated);

 private:
  EvalResult classify(const EvalExample& e);
  EvalResult generate_answer(const EvalExample& e);

  const Architecture& arch_;
  ParamPtrs w_;
  const Tokenizer& tok_;
  EvalSettings s_;
  SharedPrefixPass pass_;
  std::vector<int32_t> ids_;
  std::vector<int64_t> rows_;
  std::vector<float> logits_;
};

// Accumulates per-example results into the task's metric.
struct EvalTotals {
  int64_t n = 0, truncated = 0;
  int64_t max_length = 0;  // the maximum length used
  double accuracy = 0, f1 = 0, em = 0;  // sums
  bool generation = false;              // the metric is F1 (and EM), else accuracy
  void add(const EvalResult& r);
  const char* metric() const { return generation ? "f1" : "accuracy"; }
  double value() const { return n ? (generation ? f1 : accuracy) / static_cast<double>(n) : 0.0; }
  double mean_em() const { return n ? em / static_cast<double>(n) : 0.0; }
};

// A store's current weights as fp32 pointers for an Evaluator, so training can
// score its dev set by generation with the weights as they are at that step:
// read in place where the tier keeps fp32 arrays in RAM (--offload none),
// otherwise copied to fp32 (the whole model, for the evaluation's life: the
// 16-bit and disk tiers need that much more memory while it runs). The store's
// pending update must have been flushed.
class StoreWeights {
 public:
  explicit StoreWeights(const ParamStore& store);
  ParamPtrs ptrs() const { return ptrs_; }

 private:
  std::vector<std::vector<float>> owned_;
  std::vector<const float*> ptrs_;
};

// Scores `examples` with `weights`; stops early (the totals so far) when
// `stop` returns true before an example.
EvalTotals evaluate_weights(const Architecture& arch, ParamPtrs weights, const Tokenizer& tok,
                            std::span<const EvalExample> examples, EvalSettings settings,
                            const std::function<void(const EvalExample&, const EvalResult&)>& each = {},
                            const std::function<bool()>& stop = {});

// The default maximum length: the model's context, at most 2048 (MeZO's max_length).
int64_t default_eval_length(const Architecture& arch);

// Loads the model (and its tokenizer) in `model_dir` and scores `examples`;
// max_length 0 = default_eval_length. `each` (optional) sees every result.
EvalTotals evaluate_model(const std::filesystem::path& model_dir, std::span<const EvalExample> examples,
                          EvalSettings settings,
                          const std::function<void(const EvalExample&, const EvalResult&)>& each = {});

}  // namespace zotune
