// MeZO's evaluation protocol (princeton-nlp/MeZO large_models: tasks.py
// sample_subset / sample_train_sets, run.py main, utils.py encode_prompt):
//
// Sampling. A split of n examples is sampled with seed s by numpy's legacy
// generator: np.random.seed(s); np.random.permutation(n)[:num]. MeZO draws
// num_train + num_dev examples from the train split (the dev set is the last
// num_dev of them, the train set the rest) and num_test from the validation
// split, which it uses as the test set, each with the same seed (its
// --train_set_seed). numpy_permutation() reproduces numpy's MT19937 seeding
// (init_genrand) and its shuffle (Fisher-Yates from the end, bounded draws by
// masked rejection), so the sampled ids equal MeZO's.
//
// Prompts. Demonstrations are the demo strings (tasks.h), each .strip()ped,
// joined by "\n\n" and .strip()ped; the test example's text follows after
// "\n\n"; the whole is .lstrip()ped. With no demonstrations this is the
// zero-shot prompt. SFC calibration (Holtzman et al. 2021; MeZO --sfc) scores
// each candidate again after the template's calibration prompt, without
// demonstrations; MeZO's --icl_sfc puts the demonstrations before the
// calibration prompt in the same layout (its encode_prompt with
// encode_sfc/verbalize_sfc).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/tasks.h"

namespace zotune {

// numpy.random.RandomState(seed).permutation(n).
std::vector<int64_t> numpy_permutation(uint32_t seed, int64_t n);
// numpy.random.seed(seed); numpy.random.randint(0, high, n) (legacy: masked
// rejection of 32-bit draws; high <= 2^32).
std::vector<int64_t> numpy_randint(uint32_t seed, int64_t high, int64_t n);
// MeZO's sample_subset: the first min(num, n) entries of numpy_permutation(seed, n).
std::vector<int64_t> sample_subset(int64_t n, int64_t num, uint32_t seed);

struct MezoSample {
  std::vector<int64_t> train, dev, test;  // indices into the train split (train, dev) and the validation split (test)
};
// MeZO's ICL without a train-set seed (its icl.sh): one demonstration set per
// test example, set i sampled with seed numpy_randint(seed, 10000, num_test)[i]
// (MeZO's seed is 0), the test examples with `seed`.
std::vector<uint32_t> per_example_demo_seeds(uint32_t seed, int64_t num_test);

// Defaults of MeZO's scripts: 1000 / 500 / 1000; the dev set of CB and COPA is 100.
constexpr int64_t kDefaultNumTrain = 1000, kDefaultNumTest = 1000;
int64_t default_num_dev(std::string_view task);
MezoSample mezo_sample(int64_t train_size, int64_t validation_size, int64_t num_train, int64_t num_dev,
                       int64_t num_test, uint32_t seed);

// The test example `r` after the demonstrations: Classification gives the
// prompt and candidates (correct copied), Completion the prompt (completion empty).
TaskExample with_demonstrations(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos);
// The SFC calibration prompt and candidates of `r` (Classification only):
// without `demos`, sfc_encoded.strip(' ') and the rest of each
// sfc_verbalized[k].strip(' ') (MeZO --sfc); with `demos` (MeZO --icl_sfc) the
// layout of with_demonstrations() over the calibration strings.
TaskExample calibration_example(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos = {});

}  // namespace zotune

namespace zotune {

// One example ready to score: the prompt (demonstrations included) with its
// candidates or, for generation, its gold answers.
struct EvalExample {
  int64_t id = -1;         // index in its split
  std::string origin;      // file:line or file: JSON path
  TaskExample ex;          // Classification: prompt, candidates, correct; Completion: prompt
  std::vector<std::string> answers;  // Completion: the gold answers
  std::vector<int64_t> demo_ids;  // the demonstrations' indices in the train split
  bool calibrate = false;  // Classification: score against `sfc` (MeZO --sfc / --icl_sfc)
  TaskExample sfc;
};

enum class Calibration {
  None,
  Sfc,      // the calibration prompt alone (MeZO --sfc)
  IclSfc,   // the demonstrations, then the calibration prompt (MeZO --icl_sfc)
};
// Example `r` of a task after `demos`, with its calibration prompts if asked.
EvalExample make_eval_example(std::string_view task, const TaskRender& r, std::span<const TaskRender* const> demos,
                              Calibration calibration);

}  // namespace zotune
