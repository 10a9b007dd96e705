#include "data/dataset.h"

#include <algorithm>

#include "base/error.h"
#include "base/fs.h"
#include "data/record.h"
#include "data/tasks.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace zotune {

int64_t append_prompt_answer(std::span<const int32_t> prompt, std::span<const int32_t> answer, int64_t max_length,
                             std::optional<int32_t> bos_id, std::vector<int32_t>& out, bool& truncated) {
  const auto p = static_cast<int64_t>(prompt.size()), c = static_cast<int64_t>(answer.size());
  int64_t keep_p = p, keep_c = c;
  if (max_length > 0 && p + c > max_length) {
    // One prompt token stays (if there is one) so the answer's first token has a predictor.
    keep_c = std::min(c, max_length - std::min<int64_t>(p, 1));
    keep_p = max_length - keep_c;
  }
  truncated = keep_p < p || keep_c < c;
  if (keep_p == p) {
    out.insert(out.end(), prompt.begin(), prompt.end());
  } else if (keep_p > 0) {
    const bool keep_bos = bos_id && prompt[0] == *bos_id;
    if (keep_bos) out.push_back(prompt[0]);
    const int64_t tail = keep_p - (keep_bos ? 1 : 0);
    out.insert(out.end(), prompt.end() - tail, prompt.end());
  }
  out.insert(out.end(), answer.begin(), answer.begin() + keep_c);
  return std::max<int64_t>(keep_p, 1);
}

bool Dataset::is_correct(int64_t e, int32_t candidate) const {
  const auto c = correct(e);
  return std::find(c.begin(), c.end(), candidate) != c.end();
}

// Tokenizes records and stores them in a Dataset.
class DatasetBuilder {
 public:
  DatasetBuilder(const std::string& source, const DatasetOptions& opt, const Tokenizer* tok)
      : opt_(opt), tok_(tok) {
    check(opt.max_length == 0 || opt.max_length >= 2, source, ": max_length must be 0 (no limit) or at least 2, got ",
          opt.max_length);
    ds_.source_ = source;
    vocab_size_ = opt.vocab_size > 0 ? opt.vocab_size : tok ? tok->vocab_size() : 0;
    bos_ = opt.bos_id ? opt.bos_id : tok ? tok->bos_id() : std::nullopt;
    if (opt.pad_id) {
      ds_.pad_id_ = *opt.pad_id;
    } else if (tok) {
      ds_.pad_id_ = tok->pad_id().value_or(tok->eos_id().value_or(0));
    }
    if (tok && opt.append_eos) eos_ = tok->eos_id();
    if (!opt.task.empty()) {
      task_ = canonical_task_name(opt.task);
      if (task_.empty()) apply_task(opt.task, Json::object());  // throws, listing the known tasks
    }
  }

  void add_line(std::string_view line, int64_t line_no) {
    const auto bad = tok::find_invalid_utf8(line);
    if (bad != std::string_view::npos) fail("invalid UTF-8 at byte ", bad + 1, " of the line");
    const Json j = parse_json(line, "");
    const data::Record r = task_.empty() ? data::parse_record(j, vocab_size_) : from_task(j);
    if (!shape_) {
      shape_ = r.shape;
      shape_line_ = line_no;
      ds_.objective_ = data::shape_objective(r.shape);
    } else if (*shape_ != r.shape) {
      fail("the line has shape ", data::shape_name(r.shape), " but line ", shape_line_, " has ",
           data::shape_name(*shape_), " (all lines of a file must have the same shape)");
    }
    if (!data::shape_is_tokenized(r.shape) && !tok_)
      fail("shape ", data::shape_name(r.shape), " holds text, which needs a tokenizer");
    add(r);
    ds_.example_line_.push_back(line_no);
  }

  Dataset finish() {
    if (ds_.example_line_.empty()) fail(ds_.source_, ": no examples (the file is empty or all lines are blank)");
    return std::move(ds_);
  }

 private:
  data::Record from_task(const Json& j) const {
    const TaskExample t = apply_task(task_, j);
    data::Record r;
    r.text = t.prompt;
    if (t.objective == Objective::Classification) {
      r.shape = data::Shape::PromptCandidates;
      r.candidates = t.candidates;
      r.correct = t.correct;
      for (std::size_t k = 0; k < r.candidates.size(); ++k)
        if (r.candidates[k].empty()) fail("task ", task_, ": candidate ", k, " is empty");
    } else {
      r.shape = data::Shape::PromptCompletion;
      r.completion = t.completion;
    }
    return r;
  }

  std::vector<int32_t> encode(const std::string& text, bool special) const { return tok_->encode(text, special); }

  void add(const data::Record& r) {
    using data::Shape;
    switch (r.shape) {
      case Shape::Text: add_lm(encode(r.text, true), "text"); break;
      case Shape::InputIds: add_lm(r.ids, "input_ids"); break;
      case Shape::PromptCompletion: {
        std::vector<int32_t> answer = encode(r.completion, false);
        if (eos_) answer.push_back(*eos_);
        add_sequence(encode(r.text, true), answer, "completion");
        break;
      }
      case Shape::PromptCompletionIds: add_sequence(r.ids, r.completion_ids, "completion_ids"); break;
      case Shape::PromptCandidates: {
        const std::vector<int32_t> prompt = encode(r.text, true);
        for (std::size_t k = 0; k < r.candidates.size(); ++k)
          add_sequence(prompt, encode(r.candidates[k], false), "candidates[" + std::to_string(k) + "]");
        break;
      }
      case Shape::PromptCandidateIds:
        for (std::size_t k = 0; k < r.candidate_ids.size(); ++k)
          add_sequence(r.ids, r.candidate_ids[k], "candidate_ids[" + std::to_string(k) + "]");
        break;
    }
    const auto seqs = static_cast<int64_t>(ds_.seq_score_from_.size());
    ds_.max_candidates_ = std::max(ds_.max_candidates_, seqs - ds_.example_seq_.back());
    ds_.example_seq_.push_back(seqs);
    ds_.correct_.insert(ds_.correct_.end(), r.correct.begin(), r.correct.end());
    ds_.correct_offset_.push_back(static_cast<int64_t>(ds_.correct_.size()));
  }

  void add_lm(std::span<const int32_t> ids, const char* what) {
    auto n = static_cast<int64_t>(ids.size());
    if (opt_.max_length > 0 && n > opt_.max_length) {
      n = opt_.max_length;
      ++ds_.num_truncated_;
    }
    if (n < 2) fail("field '", what, "' gives ", n, " token", n == 1 ? "" : "s", ": nothing to predict");
    ds_.tokens_.insert(ds_.tokens_.end(), ids.begin(), ids.begin() + n);
    close_sequence(1);
  }

  void add_sequence(std::span<const int32_t> prompt, std::span<const int32_t> answer, const std::string& what) {
    if (answer.empty()) fail("field '", what, "' gives no tokens");
    bool truncated = false;
    const auto before = static_cast<int64_t>(ds_.tokens_.size());
    const int64_t from = append_prompt_answer(prompt, answer, opt_.max_length, bos_, ds_.tokens_, truncated);
    if (static_cast<int64_t>(ds_.tokens_.size()) - before <= from)
      fail("field '", what, "' has nothing to predict: the prompt is empty and it gives a single token");
    if (truncated) ++ds_.num_truncated_;
    close_sequence(from);
  }

  void close_sequence(int64_t score_from) {
    const auto end = static_cast<int64_t>(ds_.tokens_.size());
    ds_.max_seq_len_ = std::max(ds_.max_seq_len_, end - ds_.seq_offset_.back());
    ds_.seq_offset_.push_back(end);
    ds_.seq_score_from_.push_back(static_cast<int32_t>(score_from));
  }

  Dataset ds_;
  const DatasetOptions& opt_;
  const Tokenizer* tok_;
  int64_t vocab_size_ = 0;
  std::optional<int32_t> bos_, eos_;
  std::string task_;
  std::optional<data::Shape> shape_;
  int64_t shape_line_ = 0;
};

Dataset Dataset::parse_jsonl(std::string_view contents, const std::string& source, const DatasetOptions& options,
                             const Tokenizer* tokenizer) {
  DatasetBuilder b(source, options, tokenizer);
  if (contents.starts_with("\xEF\xBB\xBF")) contents.remove_prefix(3);  // a UTF-8 byte order mark
  int64_t line_no = 0;
  std::size_t pos = 0;
  while (pos < contents.size()) {
    std::size_t end = contents.find('\n', pos);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) continue;
    try {
      b.add_line(line, line_no);
    } catch (const Error& e) {
      fail(source, ":", line_no, ": ", e.what());
    }
  }
  return b.finish();
}

Dataset Dataset::load_jsonl(const std::filesystem::path& path, const DatasetOptions& options,
                            const Tokenizer* tokenizer) {
  return parse_jsonl(read_file(path), path.string(), options, tokenizer);
}

}  // namespace zotune
