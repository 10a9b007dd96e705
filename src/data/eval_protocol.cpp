#include "data/eval_protocol.h"

#include <algorithm>
#include <random>

#include "base/error.h"
#include "data/text.h"

namespace zotune {

namespace {

// numpy's random_interval(): a uniform integer in [0, max] by masked rejection
// of 32-bit draws (max < 2^32 here).
uint64_t random_interval(std::mt19937& mt, uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int s = 1; s <= 32; s *= 2) mask |= mask >> s;
  uint64_t v;
  do {
    v = static_cast<uint64_t>(mt()) & mask;
  } while (v > max);
  return v;
}

constexpr std::string_view kSeparator = "\n\n";  // MeZO's train_sep for every task

}  // namespace

std::vector<int64_t> numpy_permutation(uint32_t seed, int64_t n) {
  check(n >= 0 && n < (int64_t{1} << 32), "numpy_permutation: n = ", n, " is out of range");
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  // std::mt19937's seeding is MT19937's init_genrand, numpy's for an integer seed.
  std::mt19937 mt(seed);
  for (int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<int64_t>(random_interval(mt, static_cast<uint64_t>(i)));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

std::vector<int64_t> numpy_randint(uint32_t seed, int64_t high, int64_t n) {
  check(high >= 1 && high <= (int64_t{1} << 32) && n >= 0, "numpy_randint: bad range [0, ", high, ") or count ", n);
  std::mt19937 mt(seed);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<int64_t>(random_interval(mt, static_cast<uint64_t>(high - 1))));
  return out;
}

std::vector<uint32_t> per_example_demo_seeds(uint32_t seed, int64_t num_test) {
  std::vector<uint32_t> out;
  for (int64_t s : numpy_randint(seed, 10000, num_test)) out.push_back(static_cast<uint32_t>(s));
  return out;
}

std::vector<int64_t> sample_subset(int64_t n, int64_t num, uint32_t seed) {
  check(num >= 0, "sample_subset: num = ", num, " is negative");
  std::vector<int64_t> p = numpy_permutation(seed, n);
  p.resize(static_cast<std::size_t>(std::min(num, n)));
  return p;
}

int64_t default_num_dev(std::string_view task) {
  const std::string name = canonical_task_name(task);
  return name == "cb" || name == "copa" ? 100 : 500;
}

MezoSample mezo_sample(int64_t train_size, int64_t validation_size, int64_t num_train, int64_t num_dev,
                       int64_t num_test, uint32_t seed) {
  check(num_train >= 0 && num_dev >= 0 && num_test >= 0, "--num-train, --num-dev and --num-test must be >= 0");
  MezoSample s;
  std::vector<int64_t> drawn = sample_subset(train_size, num_train + num_dev, seed);
  // MeZO: dev = train_samples[-num_dev:], train = train_samples[:-num_dev].
  const auto dev = static_cast<std::ptrdiff_t>(std::min<int64_t>(num_dev, static_cast<int64_t>(drawn.size())));
  s.dev.assign(drawn.end() - dev, drawn.end());
  s.train.assign(drawn.begin(), drawn.end() - dev);
  s.test = sample_subset(validation_size, num_test, seed);
  return s;
}

namespace {

std::string demonstrations(std::span<const TaskRender* const> demos) {
  std::string out;
  for (std::size_t i = 0; i < demos.size(); ++i) {
    if (i) out += kSeparator;
    out += data::py_strip(demos[i]->demo);
  }
  return std::string(data::py_strip(out)) + std::string(kSeparator);
}

// MeZO's encode_prompt for classification: (head + s.strip(' ')).lstrip().strip(' ')
// for the encoded and each verbalized string, split into prompt and candidates.
TaskExample after_demonstrations(std::string_view task, const std::string& head, const std::string& encoded,
                                 const std::vector<std::string>& verbalized_strings, const std::vector<int32_t>& correct) {
  std::vector<std::string> verbalized;
  for (const std::string& v : verbalized_strings) verbalized.push_back(head + std::string(data::strip_spaces(v)));
  TaskExample ex = split_candidates(task, head + std::string(data::strip_spaces(encoded)), verbalized);
  ex.correct = correct;
  return ex;
}

}  // namespace

TaskExample with_demonstrations(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos) {
  const std::string head = demonstrations(demos);
  if (r.objective == Objective::Classification) return after_demonstrations(task, head, r.encoded, r.verbalized, r.correct);
  TaskExample ex;
  ex.objective = Objective::Completion;
  ex.prompt = std::string(data::py_lstrip(data::strip_spaces(head + std::string(data::strip_spaces(r.encoded)))));
  return ex;
}

TaskExample calibration_example(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos) {
  check(r.objective == Objective::Classification, "task ", task, ": calibration (SFC) is for classification tasks");
  if (!demos.empty()) return after_demonstrations(task, demonstrations(demos), r.sfc_encoded, r.sfc_verbalized, r.correct);
  TaskExample ex = split_candidates(task, r.sfc_encoded, r.sfc_verbalized, /*lstrip_prompt=*/false);
  ex.correct = r.correct;
  return ex;
}

}  // namespace zotune

namespace zotune {

EvalExample make_eval_example(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos,
                              Calibration calibration) {
  EvalExample e;
  e.ex = with_demonstrations(task, r, demos);
  if (r.objective == Objective::Completion) {
    check(calibration == Calibration::None, "task ", task, ": calibration (SFC) is for classification tasks, not generation");
    e.answers = r.answers;
  } else if (calibration != Calibration::None) {
    e.calibrate = true;
    e.sfc = calibration_example(task, r, calibration == Calibration::IclSfc ? demos : std::span<const TaskRender* const>{});
  }
  return e;
}

}  // namespace zotune
