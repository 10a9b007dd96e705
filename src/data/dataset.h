// Training and evaluation datasets: JSONL files, one example a line, tokenized
// once at load into scored sequences.
//
// Line shapes (all lines of a file must have the same one; blank lines are skipped):
//   {"text": "..."}                                           LanguageModel
//   {"prompt": "...", "completion": "..."}                    Completion
//   {"prompt": "...", "candidates": ["...", ...], "label": k} Classification
//   {"input_ids": [...]}                                      LanguageModel, pre-tokenized
//   {"prompt_ids": [...], "completion_ids": [...]}            Completion, pre-tokenized
//   {"prompt_ids": [...], "candidate_ids": [[...], ...], "label": k}
// "label" may also be an array of correct candidates: the first is trained on,
// any of them counts as correct in evaluation. Other keys are ignored. With
// DatasetOptions::task, lines are a benchmark's raw records instead (tasks.h).
//
// Tokenization (text shapes; pre-tokenized ids are used exactly as given):
//   LanguageModel   encode(text, add_special_tokens=true); every next token is scored.
//   Completion      encode(prompt, true) ++ encode(completion, false) ++ [EOS if
//                   append_eos and the tokenizer has one]; only completion tokens
//                   (and that EOS) are scored.
//   Classification  one sequence per candidate: encode(prompt, true) ++
//                   encode(candidate, false); only the candidate's tokens are
//                   scored (MeZO's train_as_classification).
// The two parts are tokenized separately so the scored span is exact.
//
// Truncation to max_length tokens per sequence:
//   LanguageModel   keeps the first max_length tokens.
//   Completion and Classification  cut the prompt from the left (its head goes,
//                   as in MeZO), keeping a leading BOS in place; if the
//                   completion/candidate alone does not fit, it keeps its
//                   first max_length - 1 tokens after one prompt token (the BOS
//                   if there is one, else the prompt's last token), so that its
//                   first token is still predicted. Pre-tokenized lines are
//                   truncated the same way.
// A sequence that ends up with nothing to predict (a one-token text, a
// completion with an empty prompt and one token) is an error naming the line.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"

namespace zotune {

class Tokenizer;

struct DatasetOptions {
  int64_t max_length = 0;  // tokens per sequence; 0 = no limit, else >= 2
  bool append_eos = true;  // Completion (text): append the tokenizer's EOS after the completion
  std::string task;        // a MeZO task (tasks.h): lines are its raw records; "" = the shapes above
  int64_t vocab_size = 0;  // bound for pre-tokenized ids; 0 = the tokenizer's vocab_size()
  std::optional<int32_t> pad_id;  // default: the tokenizer's pad id, else its EOS id, else 0
  std::optional<int32_t> bos_id;  // kept at the head when a prompt is cut; default: the tokenizer's
};

class Dataset {
 public:
  // The tokenizer is needed for text shapes and tasks, not for pre-tokenized
  // files. Errors name the file, the 1-based line and the field.
  static Dataset load_jsonl(const std::filesystem::path& path, const DatasetOptions& options = {},
                            const Tokenizer* tokenizer = nullptr);
  // The same from a string; `source` stands for the file name in messages.
  static Dataset parse_jsonl(std::string_view contents, const std::string& source,
                             const DatasetOptions& options = {}, const Tokenizer* tokenizer = nullptr);

  Objective objective() const { return objective_; }
  int64_t size() const { return static_cast<int64_t>(example_line_.size()); }  // examples
  int64_t num_sequences() const { return static_cast<int64_t>(seq_score_from_.size()); }

  // Example e owns sequences [first_sequence(e), first_sequence(e) + num_candidates(e)):
  // one per candidate for Classification, one otherwise.
  int64_t first_sequence(int64_t e) const { return example_seq_[e]; }
  int64_t num_candidates(int64_t e) const { return example_seq_[e + 1] - example_seq_[e]; }
  std::span<const int32_t> tokens(int64_t s) const {
    return {tokens_.data() + seq_offset_[s], static_cast<std::size_t>(seq_offset_[s + 1] - seq_offset_[s])};
  }
  // tokens(s)[t] for t >= score_from(s) are the scored targets (predicted at t - 1).
  int64_t score_from(int64_t s) const { return seq_score_from_[s]; }

  // Classification: the trained label and every correct candidate; -1 / empty otherwise.
  int32_t label(int64_t e) const { return correct(e).empty() ? -1 : correct(e)[0]; }
  std::span<const int32_t> correct(int64_t e) const {
    return {correct_.data() + correct_offset_[e], static_cast<std::size_t>(correct_offset_[e + 1] - correct_offset_[e])};
  }
  bool is_correct(int64_t e, int32_t candidate) const;

  int64_t line(int64_t e) const { return example_line_[e]; }  // 1-based line in the file
  int32_t pad_id() const { return pad_id_; }
  int64_t max_sequence_length() const { return max_seq_len_; }
  int64_t max_candidates() const { return max_candidates_; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t num_truncated() const { return num_truncated_; }  // sequences cut to max_length
  const std::string& source() const { return source_; }

 private:
  friend class DatasetBuilder;
  std::string source_;
  Objective objective_ = Objective::LanguageModel;
  int32_t pad_id_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> seq_offset_{0};   // [S+1] into tokens_
  std::vector<int32_t> seq_score_from_;  // [S]
  std::vector<int64_t> example_seq_{0};  // [E+1] into sequences
  std::vector<int64_t> correct_offset_{0};  // [E+1] into correct_
  std::vector<int32_t> correct_;
  std::vector<int64_t> example_line_;    // [E]
  int64_t max_seq_len_ = 0, max_candidates_ = 0, num_truncated_ = 0;
};

// Appends prompt ++ answer to `out`, cut to max_length (0 = no limit) as
// described above; returns the position of the first scored token. Sets
// `truncated` when anything was cut. Exposed for tests.
int64_t append_prompt_answer(std::span<const int32_t> prompt, std::span<const int32_t> answer, int64_t max_length,
                             std::optional<int32_t> bos_id, std::vector<int32_t>& out, bool& truncated);

}  // namespace zotune
