#include "data/eval.h"

#include "base/error.h"

namespace zotune {

void sequence_mean_logprob(const Batch& batch, std::span<const float> target_logprob, std::vector<double>& out) {
  check(target_logprob.size() == batch.targets.size(), "sequence_mean_logprob: ", target_logprob.size(),
        " log-likelihoods for ", batch.targets.size(), " targets");
  out.assign(static_cast<std::size_t>(batch.B), 0.0);
  std::vector<int64_t> count(static_cast<std::size_t>(batch.B), 0);
  for (std::size_t i = 0; i < target_logprob.size(); ++i) {
    out[static_cast<std::size_t>(batch.target_seq[i])] += target_logprob[i];
    ++count[static_cast<std::size_t>(batch.target_seq[i])];
  }
  for (std::size_t b = 0; b < out.size(); ++b) {
    check(count[b] > 0, "sequence_mean_logprob: sequence ", b, " has no scored target");
    out[b] /= static_cast<double>(count[b]);
  }
}

void predict_candidates(const Batch& batch, std::span<const double> seq_score, std::vector<int32_t>& out) {
  check(batch.objective == Objective::Classification, "predict_candidates: the batch is not a classification batch");
  check(seq_score.size() == static_cast<std::size_t>(batch.B), "predict_candidates: ", seq_score.size(),
        " scores for ", batch.B, " sequences");
  out.assign(static_cast<std::size_t>(batch.num_examples), -1);
  std::vector<double> best(static_cast<std::size_t>(batch.num_examples), 0.0);
  for (std::size_t b = 0; b < seq_score.size(); ++b) {
    const auto e = static_cast<std::size_t>(batch.seq_example[b]);
    if (out[e] < 0 || seq_score[b] > best[e]) {
      out[e] = batch.seq_candidate[b];
      best[e] = seq_score[b];
    }
  }
}

void AccuracyCounter::add(const Dataset& ds, const Batch& batch, std::span<const int32_t> predicted) {
  check(predicted.size() == batch.example_ids.size(), "AccuracyCounter: ", predicted.size(), " predictions for ",
        batch.example_ids.size(), " examples");
  for (std::size_t k = 0; k < predicted.size(); ++k) {
    correct += ds.is_correct(batch.example_ids[k], predicted[k]) ? 1 : 0;
    ++total;
  }
}

}  // namespace zotune
