// A training/eval batch as the trainer consumes it: padded token ids plus the
// (row, target) pairs the loss scores. Built by src/data from JSONL examples.
//
// Dimension letters: B sequences, T tokens per sequence (padded to the longest
// in the batch), rows index the flattened [B*T] grid.
#pragma once
#include <cstdint>
#include <vector>

namespace zotune {

enum class Objective : uint8_t {
  LanguageModel,   // {"text"}: every next token
  Completion,      // {"prompt", "completion"}: next tokens inside the completion only
  Classification,  // {"prompt", "candidates", "label"}: CE over candidates' mean token log-likelihoods
};

struct Batch {
  Objective objective = Objective::LanguageModel;
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;   // [B*T], padding = pad id (never scored, masked out)
  std::vector<uint8_t> mask;  // [B*T] 1 = real token
  // Scored predictions: position rows[i] (in [0, B*T)) predicts token targets[i].
  std::vector<int64_t> rows;
  std::vector<int32_t> targets;
  std::vector<int32_t> target_seq;  // sequence b of each target (= rows[i] / T)
  // Classification: sequence b is candidate seq_candidate[b] of example seq_example[b];
  // example e has label labels[e] (index into its candidates). Empty otherwise.
  std::vector<int32_t> seq_example;
  std::vector<int32_t> seq_candidate;
  std::vector<int32_t> labels;
  int64_t num_examples = 0;   // examples in this batch (classification: < B)
  // Dataset index of each example in this batch [num_examples]: for eval outputs,
  // per-example predictions and Dataset::is_correct().
  std::vector<int64_t> example_ids;
  int64_t num_tokens() const { int64_t n = 0; for (auto m : mask) n += m; return n; }
};

// A language-model batch of B unpadded sequences of T tokens (ids: [B*T]) that
// scores every next token: benchmarks and tests on synthetic tokens.
Batch language_model_batch(std::vector<int32_t> ids, int64_t B, int64_t T);
// The same from sequences of any lengths, right-padded with `pad_id` to the
// longest; a next token is scored where both tokens are real.
Batch language_model_batch(const std::vector<std::vector<int32_t>>& seqs, int32_t pad_id);

}  // namespace zotune
