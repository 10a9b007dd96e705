#include "data/loader.h"

#include <algorithm>

#include "base/error.h"
#include "data/shuffle.h"

namespace zotune {

void fill_batch(const Dataset& ds, std::span<const int64_t> examples, Batch& out) {
  const bool classification = ds.objective() == Objective::Classification;
  int64_t B = 0, T = 0;
  for (int64_t e : examples) {
    check(e >= 0 && e < ds.size(), ds.source(), ": example ", e, " is out of range [0, ", ds.size(), ")");
    const int64_t first = ds.first_sequence(e);
    for (int64_t s = first; s < first + ds.num_candidates(e); ++s)
      T = std::max(T, static_cast<int64_t>(ds.tokens(s).size()));
    B += ds.num_candidates(e);
  }
  out.objective = ds.objective();
  out.B = B;
  out.T = T;
  // assign()/clear() keep the capacity, so a reserved Batch is never reallocated.
  out.ids.assign(static_cast<std::size_t>(B * T), ds.pad_id());
  out.mask.assign(static_cast<std::size_t>(B * T), 0);
  out.rows.clear();
  out.targets.clear();
  out.target_seq.clear();
  out.seq_example.clear();
  out.seq_candidate.clear();
  out.labels.clear();
  out.example_ids.clear();
  out.num_examples = static_cast<int64_t>(examples.size());

  int64_t b = 0;
  for (std::size_t k = 0; k < examples.size(); ++k) {
    const int64_t e = examples[k];
    const int64_t first = ds.first_sequence(e);
    for (int64_t c = 0; c < ds.num_candidates(e); ++c, ++b) {
      const auto tokens = ds.tokens(first + c);
      const int64_t n = static_cast<int64_t>(tokens.size());
      std::copy(tokens.begin(), tokens.end(), out.ids.begin() + b * T);
      std::fill_n(out.mask.begin() + b * T, n, uint8_t{1});
      for (int64_t t = ds.score_from(first + c); t < n; ++t) {
        out.rows.push_back(b * T + t - 1);
        out.targets.push_back(tokens[t]);
        out.target_seq.push_back(static_cast<int32_t>(b));
      }
      if (classification) {
        out.seq_example.push_back(static_cast<int32_t>(k));
        out.seq_candidate.push_back(static_cast<int32_t>(c));
      }
    }
    if (classification) out.labels.push_back(ds.label(e));
    out.example_ids.push_back(e);
  }
}

void reserve_batch(const Dataset& ds, int64_t max_examples, Batch& out) {
  const int64_t B = max_examples * ds.max_candidates(), T = ds.max_sequence_length();
  const auto cells = static_cast<std::size_t>(B * T), scored = static_cast<std::size_t>(B * std::max<int64_t>(T - 1, 0));
  out.ids.reserve(cells);
  out.mask.reserve(cells);
  out.rows.reserve(scored);
  out.targets.reserve(scored);
  out.target_seq.reserve(scored);
  const bool classification = ds.objective() == Objective::Classification;
  out.seq_example.reserve(classification ? static_cast<std::size_t>(B) : 0);
  out.seq_candidate.reserve(classification ? static_cast<std::size_t>(B) : 0);
  out.labels.reserve(classification ? static_cast<std::size_t>(max_examples) : 0);
  out.example_ids.reserve(static_cast<std::size_t>(max_examples));
}

DataLoader::DataLoader(const Dataset& ds, const LoaderOptions& options) : ds_(ds), opt_(options) {
  check(opt_.batch_size >= 1, ds.source(), ": batch size must be at least 1, got ", opt_.batch_size);
  check(opt_.world >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world, ds.source(), ": rank ", opt_.rank,
        " is not in a world of ", opt_.world);
}

const std::vector<int64_t>& DataLoader::permutation(int64_t epoch) {
  for (int slot = 0; slot < 2; ++slot)
    if (perm_epoch_[slot] == epoch) return perm_[slot];
  // Epochs come in increasing order within a batch; the older slot goes.
  const int slot = perm_epoch_[0] <= perm_epoch_[1] ? 0 : 1;
  epoch_permutation(opt_.seed, static_cast<uint64_t>(epoch), ds_.size(), perm_[slot]);
  perm_epoch_[slot] = epoch;
  return perm_[slot];
}

int64_t DataLoader::example_at(int64_t position) {
  const int64_t n = ds_.size();
  if (!opt_.shuffle) return position % n;
  return permutation(position / n)[static_cast<std::size_t>(position % n)];
}

void DataLoader::examples_for_step(int64_t step, std::vector<int64_t>& out) {
  check(step >= 0, ds_.source(), ": step ", step, " is negative");
  out.clear();
  const int64_t start = step * global_batch_size() + opt_.rank * opt_.batch_size;
  for (int64_t j = 0; j < opt_.batch_size; ++j) out.push_back(example_at(start + j));
}

void DataLoader::fill(int64_t step, Batch& out) {
  examples_for_step(step, examples_);
  fill_batch(ds_, examples_, out);
}

Batch DataLoader::batch_for_step(int64_t step) {
  Batch b;
  fill(step, b);
  return b;
}

double DataLoader::epoch_at(int64_t step) const {
  return static_cast<double>(step) * static_cast<double>(global_batch_size()) / static_cast<double>(ds_.size());
}

EvalLoader::EvalLoader(const Dataset& ds, int64_t batch_size, int rank, int world)
    : ds_(ds), batch_size_(batch_size), rank_(rank), world_(world) {
  check(batch_size >= 1, ds.source(), ": eval batch size must be at least 1, got ", batch_size);
  check(world >= 1 && rank >= 0 && rank < world, ds.source(), ": rank ", rank, " is not in a world of ", world);
}

int64_t EvalLoader::num_batches() const {
  const int64_t g = batch_size_ * world_;
  return (ds_.size() + g - 1) / g;
}

void EvalLoader::examples_for_batch(int64_t i, std::vector<int64_t>& out) const {
  check(i >= 0 && i < num_batches(), ds_.source(), ": eval batch ", i, " is out of range [0, ", num_batches(), ")");
  out.clear();
  const int64_t start = i * batch_size_ * world_ + rank_ * batch_size_;
  for (int64_t e = start; e < std::min(start + batch_size_, ds_.size()); ++e) out.push_back(e);
}

void EvalLoader::fill(int64_t i, Batch& out) {
  examples_for_batch(i, examples_);
  fill_batch(ds_, examples_, out);
}

}  // namespace zotune
