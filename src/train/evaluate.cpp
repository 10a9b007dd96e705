#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "data/dataset.h"
#include "data/metrics.h"
#include "data/text.h"
#include "model/generate.h"
#include "model/model.h"
#include "store/param_store.h"
#include "tokenizer/tokenizer.h"

namespace zotune {

Evaluator::Evaluator(const Architecture& arch, ParamPtrs weights, const Tokenizer& tok, EvalSettings settings)
    : arch_(arch), w_(weights), tok_(tok), s_(settings), pass_(arch) {
  check(s_.max_length >= 2, "evaluation: the maximum length must be at least 2 tokens, got ", s_.max_length);
  check(s_.max_new_tokens >= 1 && s_.max_new_tokens < s_.max_length, "evaluation: max new tokens (",
        s_.max_new_tokens, ") must be in [1, max length ", s_.max_length, ")");
}

std::vector<double> Evaluator::answer_logprobs(std::span<const int32_t> prompt, std::span<const int32_t> answer,
                                               bool& truncated) {
  const std::vector<int32_t> one(answer.begin(), answer.end());
  return answers_logprobs(prompt, {&one, 1}, truncated).front();
}

std::vector<std::vector<double>> Evaluator::answers_logprobs(std::span<const int32_t> prompt,
                                                             std::span<const std::vector<int32_t>> answers,
                                                             bool& truncated) {
  // One right-padded batch of prompt ++ answer k; the answers share the
  // prompt's forward (model/shared_prefix.h).
  const auto K = static_cast<int64_t>(answers.size());
  std::vector<std::vector<int32_t>> seqs(answers.size());
  std::vector<int64_t> from(answers.size());
  int64_t T = 0;
  for (std::size_t k = 0; k < answers.size(); ++k) {
    bool cut = false;
    from[k] = append_prompt_answer(prompt, answers[k], s_.max_length, tok_.bos_id(), seqs[k], cut);
    truncated = truncated || cut;
    T = std::max(T, static_cast<int64_t>(seqs[k].size()));
  }
  const int64_t V = arch_.config().vocab_size;
  ids_.assign(static_cast<std::size_t>(K * T), 0);
  std::vector<uint8_t> mask(static_cast<std::size_t>(K * T), 0);
  std::vector<int64_t> needed(answers.size(), 0);
  rows_.clear();
  for (int64_t k = 0; k < K; ++k) {
    const auto& seq = seqs[static_cast<std::size_t>(k)];
    const auto n = static_cast<int64_t>(seq.size());
    for (int32_t id : seq)
      if (id < 0 || id >= V) fail("token id ", id, " is outside the model's vocabulary [0, ", V, ")");
    std::copy(seq.begin(), seq.end(), ids_.begin() + k * T);
    std::fill_n(mask.begin() + k * T, n, uint8_t{1});
    for (int64_t t = from[static_cast<std::size_t>(k)]; t < n; ++t) rows_.push_back(k * T + t - 1);
    if (n > from[static_cast<std::size_t>(k)]) needed[static_cast<std::size_t>(k)] = n - 1;
  }
  std::vector<std::vector<double>> out(answers.size());
  const auto nrows = static_cast<int64_t>(rows_.size());
  if (nrows == 0) return out;
  const std::vector<int32_t> group(answers.size(), 0);
  const PrefixLayout layout = plan_prefix_sharing(ids_.data(), mask.data(), K, T, group.data(), needed.data());
  logits_.resize(static_cast<std::size_t>(nrows * V));
  pass_.start(ids_.data(), mask.data(), K, T, &layout);
  pass_.run_body(w_);
  pass_.logits(w_, rows_.data(), nrows, logits_.data());
  for (int64_t i = 0; i < nrows; ++i) {
    const float* row = logits_.data() + i * V;
    const double top = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - top);
    const int64_t r = rows_[static_cast<std::size_t>(i)];
    out[static_cast<std::size_t>(r / T)].push_back(static_cast<double>(row[ids_[static_cast<std::size_t>(r + 1)]]) - top -
                                                   std::log(sum));
  }
  return out;
}

EvalResult Evaluator::run(const EvalExample& e) {
  return e.ex.objective == Objective::Classification ? classify(e) : generate_answer(e);
}

namespace {
double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
}  // namespace

EvalResult Evaluator::classify(const EvalExample& e) {
  EvalResult r;
  check(!e.ex.candidates.empty(), e.origin, ": the example has no candidates");
  const std::vector<int32_t> prompt = tok_.encode(e.ex.prompt, true);
  std::vector<int32_t> sfc_prompt;
  if (e.calibrate) sfc_prompt = tok_.encode(e.sfc.prompt, true);
  std::vector<std::vector<int32_t>> answers, sfc_answers;
  for (std::size_t k = 0; k < e.ex.candidates.size(); ++k) {
    answers.push_back(tok_.encode(e.ex.candidates[k], false));
    if (answers.back().empty()) fail(e.origin, ": candidate ", k, " gives no tokens");
    if (e.calibrate) sfc_answers.push_back(tok_.encode(e.sfc.candidates[k], false));
  }
  const std::vector<std::vector<double>> lps = answers_logprobs(prompt, answers, r.truncated);
  std::vector<std::vector<double>> sfc_lps;
  bool sfc_cut = false;
  if (e.calibrate) sfc_lps = answers_logprobs(sfc_prompt, sfc_answers, sfc_cut);
  for (std::size_t k = 0; k < e.ex.candidates.size(); ++k) {
    CandidateScore c;
    c.text = e.ex.candidates[k];
    const std::vector<double>& lp = lps[k];
    if (lp.empty()) fail(e.origin, ": candidate ", k, " has nothing to score (an empty prompt and one token)");
    c.tokens = static_cast<int64_t>(lp.size());
    c.score = sum_of(lp) / static_cast<double>(lp.size());
    if (e.calibrate) {
      c.calibration = sum_of(sfc_lps[k]);
      c.score = sum_of(lp) - c.calibration;
    }
    if (r.predicted < 0 || c.score > r.candidates[static_cast<std::size_t>(r.predicted)].score)
      r.predicted = static_cast<int32_t>(k);
    r.candidates.push_back(std::move(c));
  }
  r.accuracy = std::find(e.ex.correct.begin(), e.ex.correct.end(), r.predicted) != e.ex.correct.end() ? 1.0 : 0.0;
  return r;
}

EvalResult Evaluator::generate_answer(const EvalExample& e) {
  EvalResult r;
  const std::vector<int32_t> full = tok_.encode(e.ex.prompt, true);
  std::vector<int32_t> prompt;
  append_prompt_answer(full, {}, s_.max_length - s_.max_new_tokens, tok_.bos_id(), prompt, r.truncated);
  if (prompt.empty()) fail(e.origin, ": the prompt gives no tokens");
  SamplingOptions opt;  // greedy
  opt.max_new_tokens = std::min(s_.max_new_tokens, s_.max_length - static_cast<int64_t>(prompt.size()));
  // MeZO stops at the last token of encode("\n") (its eos_token) or the tokenizer's EOS.
  const std::vector<int32_t> newline = tok_.encode("\n", false);
  if (!newline.empty()) opt.eos_ids.push_back(newline.back());
  if (tok_.eos_id()) opt.eos_ids.push_back(*tok_.eos_id());
  else opt.eos_ids.insert(opt.eos_ids.end(), arch_.config().eos_token_ids.begin(), arch_.config().eos_token_ids.end());
  const GenerationResult g = generate(arch_, w_, prompt, opt);
  CandidateScore c;
  c.text = tok_.decode(g.new_ids, /*skip_special_tokens=*/true);
  if (tok_.clean_up_tokenization_spaces()) c.text = Tokenizer::clean_up_tokenization(c.text);
  // Scored as a candidate: the generated text re-tokenized after the prompt,
  // so that prompt + text is the scored sequence's text, as for classification.
  const std::vector<int32_t> text_ids = tok_.encode(c.text, false);
  if (!text_ids.empty()) {
    bool cut = false;
    const std::vector<double> lp = answer_logprobs(prompt, text_ids, cut);
    c.tokens = static_cast<int64_t>(lp.size());
    c.score = lp.empty() ? 0.0 : sum_of(lp) / static_cast<double>(lp.size());
  }
  r.prediction = std::string(data::py_strip(c.text));
  r.candidates.push_back(std::move(c));
  r.f1 = max_f1(r.prediction, e.answers);
  r.em = max_exact_match(r.prediction, e.answers);
  return r;
}

void EvalTotals::add(const EvalResult& r) {
  ++n;
  truncated += r.truncated ? 1 : 0;
  accuracy += r.accuracy;
  f1 += r.f1;
  em += r.em;
}

int64_t default_eval_length(const Architecture& arch) {
  const int64_t context = arch.config().max_positions;
  return context > 0 ? std::min<int64_t>(context, 2048) : 2048;
}

StoreWeights::StoreWeights(const ParamStore& store) {
  const auto& tensors = store.arch().tensors();
  for (std::size_t id = 0; id < tensors.size(); ++id) {
    if (const float* p = store.fp32_in_place(static_cast<int>(id))) {
      ptrs_.push_back(p);
      continue;
    }
    owned_.emplace_back(static_cast<std::size_t>(tensors[id].numel()));
    store.read_tensor(static_cast<int>(id), owned_.back().data());
    ptrs_.push_back(owned_.back().data());
  }
}

EvalTotals evaluate_weights(const Architecture& arch, ParamPtrs weights, const Tokenizer& tok,
                            std::span<const EvalExample> examples, EvalSettings settings,
                            const std::function<void(const EvalExample&, const EvalResult&)>& each,
                            const std::function<bool()>& stop) {
  const int64_t context = arch.config().max_positions;
  if (settings.max_length <= 0) settings.max_length = default_eval_length(arch);
  if (context > 0 && settings.max_length > context)
    fail("--max-length ", settings.max_length, " exceeds the model's context of ", context, " tokens");
  Evaluator ev(arch, weights, tok, settings);
  EvalTotals totals;
  totals.max_length = settings.max_length;
  totals.generation = !examples.empty() && examples.front().ex.objective == Objective::Completion;
  for (const EvalExample& e : examples) {
    if (stop && stop()) break;
    EvalResult r;
    try {
      r = ev.run(e);
    } catch (const Error& err) {
      const std::string msg = err.what();
      if (!e.origin.empty() && !msg.starts_with(e.origin)) fail(e.origin, ": ", msg);
      throw;
    }
    totals.add(r);
    if (each) each(e, r);
  }
  return totals;
}

EvalTotals evaluate_model(const std::filesystem::path& model_dir, std::span<const EvalExample> examples,
                          EvalSettings settings, const std::function<void(const EvalExample&, const EvalResult&)>& each) {
  LoadedModel m = load_model(model_dir);
  const Tokenizer tok = Tokenizer::load(model_dir);
  return evaluate_weights(*m.arch, m.weights->ptrs(), tok, examples, settings, each);
}

}  // namespace zotune
