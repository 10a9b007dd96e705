// zotune eval's data side: the task files in every format (tests/data/eval/,
// written by tools/make_eval_fixtures.py), MeZO's sampling against an
// independent Python implementation of numpy's legacy permutation, the prompts
// against tools/mezo_prompts.py's rendering of MeZO's templates
// (tests/golden/eval_prompts.jsonl), and F1/EM against the SQuAD v1.1
// evaluation logic in tools/squad_v11_metrics.py.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "data/dataset.h"
#include "data/eval_protocol.h"
#include "data/metrics.h"
#include "data/task_files.h"
#include "io/json_file.h"
#include "test_tokenizer_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;
using testing::quote;
using testing::TempDir;

fs::path eval_data() { return testing::source_dir() / "tests" / "data" / "eval"; }

std::string python(const std::string& args) {
  const std::string cmd = "python3 " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd << "\n" << out;
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// ------------------------------------------------------------------ sampling

TEST(EvalSampling, NumpyPermutationKnownValues) {
  // numpy: np.random.seed(0); np.random.permutation(10), and the same with seed 42.
  EXPECT_EQ(numpy_permutation(0, 10), (std::vector<int64_t>{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}));
  EXPECT_EQ(numpy_permutation(42, 10), (std::vector<int64_t>{8, 1, 5, 0, 7, 2, 9, 4, 3, 6}));
  EXPECT_EQ(numpy_permutation(3, 1), (std::vector<int64_t>{0}));
  EXPECT_TRUE(numpy_permutation(3, 0).empty());
}

TEST(EvalSampling, NumpyRandintKnownValuesAndPerExampleSeeds) {
  // numpy: np.random.seed(0); np.random.randint(0, 10000, 5) (MeZO's per-example demonstration seeds).
  EXPECT_EQ(numpy_randint(0, 10000, 5), (std::vector<int64_t>{2732, 9845, 3264, 4859, 9225}));
  EXPECT_EQ(per_example_demo_seeds(0, 3), (std::vector<uint32_t>{2732, 9845, 3264}));
  EXPECT_EQ(numpy_randint(7, 1, 3), (std::vector<int64_t>{0, 0, 0}));
}

TEST(EvalSampling, NumpyPermutationMatchesPythonReference) {
  const fs::path script = testing::source_dir() / "tools" / "numpy_permutation.py";
  std::string args;
  std::vector<std::pair<uint32_t, int64_t>> cases;
  for (uint32_t seed : {0u, 1u, 13u, 4294967295u})
    for (int64_t n : {2, 7, 100, 1000, 8191}) {
      cases.emplace_back(seed, n);
      args += " " + std::to_string(seed) + ":" + std::to_string(n);
    }
  std::istringstream out(python(quote(script) + args));
  for (const auto& [seed, n] : cases) {
    std::string line;
    ASSERT_TRUE(std::getline(out, line));
    EXPECT_EQ(numpy_permutation(seed, n), Json::parse(line).get<std::vector<int64_t>>()) << "seed " << seed << " n " << n;
  }
}

TEST(EvalSampling, MezoSplitsTrainDevTest) {
  const MezoSample s = mezo_sample(10, 7, 4, 3, 5, 0);
  // permutation(10) with seed 0 is 2 8 4 9 1 6 7 3 0 5: 7 drawn, the last 3 are dev.
  EXPECT_EQ(s.train, (std::vector<int64_t>{2, 8, 4, 9}));
  EXPECT_EQ(s.dev, (std::vector<int64_t>{1, 6, 7}));
  std::vector<int64_t> first5 = numpy_permutation(0, 7);
  first5.resize(5);
  EXPECT_EQ(s.test, first5);
  // More than there is: everything, dev still the last ones drawn.
  const MezoSample all = mezo_sample(5, 3, 1000, 2, 1000, 1);
  EXPECT_EQ(all.train.size() + all.dev.size(), 5u);
  EXPECT_EQ(all.dev.size(), 2u);
  EXPECT_EQ(all.test.size(), 3u);
  EXPECT_EQ(default_num_dev("CB"), 100);
  EXPECT_EQ(default_num_dev("Copa"), 100);
  EXPECT_EQ(default_num_dev("rte"), 500);
  // Same seed, same ids; another seed, others.
  EXPECT_EQ(sample_subset(1000, 10, 5), sample_subset(1000, 10, 5));
  EXPECT_NE(sample_subset(1000, 10, 5), sample_subset(1000, 10, 6));
}

// ------------------------------------------------------------------- metrics

TEST(EvalMetrics, HandComputed) {
  EXPECT_EQ(normalize_answer("The  Cat, sat!"), "cat sat");
  EXPECT_EQ(normalize_answer("an apple a day"), "apple day");
  EXPECT_EQ(normalize_answer("theater a_b"), "theater ab");  // '_' is in string.punctuation
  EXPECT_EQ(normalize_answer("\u00a0a\u3000b\t"), "b");
  EXPECT_DOUBLE_EQ(token_f1("cat cat dog", "cat dog dog"), 2.0 / 3.0);  // 2 shared of 3 and 3
  EXPECT_DOUBLE_EQ(token_f1("in 1648 by Spain", "May 1648"), 2 * 0.25 * 0.5 / 0.75);
  EXPECT_DOUBLE_EQ(token_f1("", "x"), 0.0);
  EXPECT_DOUBLE_EQ(exact_match("", "the"), 1.0);  // both normalise to ""
  const std::vector<std::string> golds{"Carolina Panthers", "Broncos"};
  EXPECT_DOUBLE_EQ(max_f1("Denver Broncos", golds), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(max_exact_match("the Broncos.", golds), 1.0);
}

TEST(EvalMetrics, MatchOfficialSquadLogicOnTrickyCases) {
  const fs::path cases = eval_data() / "qa_metric_cases.jsonl";
  std::istringstream want(python(quote(testing::source_dir() / "tools" / "squad_v11_metrics.py") + " " + quote(cases)));
  std::ifstream in(cases);
  std::string line, expected;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ASSERT_TRUE(std::getline(want, expected)) << "the script printed fewer lines";
    const Json c = Json::parse(line), w = Json::parse(expected);
    const auto golds = c["answers"].get<std::vector<std::string>>();
    const std::string pred = c["prediction"].get<std::string>();
    EXPECT_NEAR(max_f1(pred, golds), w["f1"].get<double>(), 1e-12) << line;
    EXPECT_EQ(max_exact_match(pred, golds), w["em"].get<double>()) << line;
    ++n;
  }
  EXPECT_GE(n, 25);
}

// --------------------------------------------------------------------- files

const char* const kTasks[] = {"sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"};

// The directory of each non-HF format of a task.
fs::path official_dir(const std::string& task) {
  if (task == "sst2") return eval_data() / "glue" / "sst2";
  if (task == "squad" || task == "drop") return eval_data() / task;
  return eval_data() / "superglue" / task;
}

void expect_same(const TaskSplit& a, const TaskSplit& b) {
  ASSERT_EQ(a.examples.size(), b.examples.size()) << a.file << " vs " << b.file;
  for (std::size_t i = 0; i < a.examples.size(); ++i) {
    const TaskRender &x = a.examples[i], &y = b.examples[i];
    EXPECT_EQ(x.encoded, y.encoded) << a.origin[i] << " vs " << b.origin[i];
    EXPECT_EQ(x.verbalized, y.verbalized) << a.origin[i];
    EXPECT_EQ(x.demo, y.demo) << a.origin[i];
    EXPECT_EQ(x.correct, y.correct) << a.origin[i];
    EXPECT_EQ(x.answers, y.answers) << a.origin[i];
    EXPECT_EQ(x.sfc_verbalized, y.sfc_verbalized) << a.origin[i];
  }
}

TEST(EvalFiles, EveryFormatGivesTheSameExamples) {
  for (const std::string task : kTasks) {
    SCOPED_TRACE(task);
    for (SplitKind k : {SplitKind::Train, SplitKind::Validation}) {
      const TaskSplit hf = read_task_split(task, eval_data() / "hf" / task, k);
      const TaskSplit off = read_task_split(task, official_dir(task), k);
      EXPECT_NE(hf.file, off.file);
      expect_same(hf, off);
    }
  }
}

TEST(EvalFiles, SplitSizesAndNames) {
  const auto count = [](const std::string& task, const fs::path& dir, SplitKind k) {
    return read_task_split(task, dir, k).examples.size();
  };
  EXPECT_EQ(count("sst2", official_dir("sst2"), SplitKind::Train), 6u);
  EXPECT_EQ(count("sst2", official_dir("sst2"), SplitKind::Validation), 5u);
  EXPECT_EQ(count("multirc", official_dir("multirc"), SplitKind::Train), 6u);     // answers of 3 questions
  EXPECT_EQ(count("multirc", official_dir("multirc"), SplitKind::Validation), 4u);
  EXPECT_EQ(count("record", official_dir("record"), SplitKind::Train), 3u);       // queries
  EXPECT_EQ(count("squad", official_dir("squad"), SplitKind::Validation), 2u);
  const TaskSplit drop = read_task_split("drop", official_dir("drop"), SplitKind::Train);
  EXPECT_EQ(drop.examples.size(), 4u);
  EXPECT_EQ(drop.skipped, 1);  // q5 has no answer, as the Hugging Face loader skips it
  EXPECT_EQ(split_file_names("squad", SplitKind::Validation),
            (std::vector<std::string>{"dev-v1.1.json", "validation.jsonl", "val.jsonl", "dev.jsonl"}));
  EXPECT_EQ(split_file_names("DROP", SplitKind::Train),
            (std::vector<std::string>{"drop_dataset_train.json", "train.jsonl"}));
}

TEST(EvalFiles, NestedRecordsFlattenWithTheirOrigin) {
  const TaskSplit m = read_task_split("multirc", official_dir("multirc"), SplitKind::Validation);
  EXPECT_HAS(m.origin[2], "val.jsonl:1 passage.questions[0].answers[2]");
  EXPECT_EQ(m.examples[2].correct, (std::vector<int32_t>{1}));
  // ReCoRD: entities from code-point spans (Zoë, Köln, Müller), sorted; both answers correct.
  const TaskSplit r = read_task_split("record", official_dir("record"), SplitKind::Validation);
  ASSERT_EQ(r.examples.size(), 2u);
  const TaskRender& q = r.examples[1];
  EXPECT_EQ(q.answers, (std::vector<std::string>{"Müller", "Zoë Müller"}));
  EXPECT_EQ(q.correct, (std::vector<int32_t>{3, 5}));  // Bonn, Ivan Petrov, Köln, Müller, Petrov, Zoë Müller
  EXPECT_EQ(q.demo.substr(q.demo.rfind('\n') + 1), "- Müller opened the bakery last week.");
  // DROP validated answers: a number, a date "day month year" stripped, spans.
  const TaskSplit d = read_task_split("drop", official_dir("drop"), SplitKind::Validation);
  EXPECT_EQ(d.examples[0].answers, (std::vector<std::string>{"67000", "67,000"}));
  EXPECT_EQ(d.examples[1].answers, (std::vector<std::string>{"2019", "2019"}));
  const TaskSplit dt = read_task_split("drop", official_dir("drop"), SplitKind::Train);
  EXPECT_EQ(dt.examples[2].answers, (std::vector<std::string>{"3 October 2004"}));
  EXPECT_EQ(dt.examples[3].answers, (std::vector<std::string>{"Spain", "the Dutch Republic"}));
  EXPECT_HAS(dt.origin[3], "drop_dataset_train.json: hist_2.qa_pairs[0]");
}

TEST(EvalFiles, MalformedFilesNameFileLineAndField) {
  TempDir tmp;
  write_text(tmp / "rte.jsonl", "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": 0}\n\n{\"premise\": \"p\",\n");
  EXPECT_HAS(error_of([&] { read_task_file("rte", tmp / "rte.jsonl", true); }), "rte.jsonl:3: invalid JSON");
  write_text(tmp / "l.jsonl", "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"maybe\"}\n");
  const std::string e1 = error_of([&] { read_task_file("rte", tmp / "l.jsonl", true); });
  EXPECT_HAS(e1, "l.jsonl:1: field 'label' = \"maybe\" is not one of entailment, not_entailment");
  write_text(tmp / "cb.jsonl", "{\"premise\": \"p\", \"label\": 1}\n");
  EXPECT_HAS(error_of([&] { read_task_file("cb", tmp / "cb.jsonl", true); }), "cb.jsonl:1: task cb: missing field 'hypothesis'");
  write_text(tmp / "m.jsonl", R"({"passage": {"text": "t", "questions": [{"question": "q", "answers": [{"text": "a"}]}]}})" "\n");
  EXPECT_HAS(error_of([&] { read_task_file("multirc", tmp / "m.jsonl", true); }),
             "m.jsonl:1: field 'passage.questions[0].answers[0].label' is missing");
  write_text(tmp / "r.jsonl", R"({"passage": {"text": "abc", "entities": [{"start": 1, "end": 5}]}, "qas": []})" "\n");
  EXPECT_HAS(error_of([&] { read_task_file("record", tmp / "r.jsonl", true); }),
             "r.jsonl:1: field 'passage.entities[0]' = [1, 5] is outside the passage (3 characters)");
  write_text(tmp / "bad.jsonl", "{\"sentence\": \"x\", \"label\": 0}\n\xff\n");
  EXPECT_HAS(error_of([&] { read_task_file("sst2", tmp / "bad.jsonl", true); }), "bad.jsonl:2: invalid UTF-8");
  // GLUE TSV.
  write_text(tmp / "a.tsv", "sentence\tlabel\nfine\t1\nbad\t2\n");
  EXPECT_HAS(error_of([&] { read_task_file("sst2", tmp / "a.tsv", true); }), "a.tsv:3: field 'label' must be 0 or 1, got \"2\"");
  write_text(tmp / "b.tsv", "index\tsentence\n0\tx\n");
  EXPECT_HAS(error_of([&] { read_task_file("sst2", tmp / "b.tsv", true); }), "b.tsv:1: the header has no column 'label'");
  // SQuAD / DROP JSON: the JSON path.
  write_text(tmp / "dev-v1.1.json", R"({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"answers": [{"text": "a"}]}]}]}]})");
  EXPECT_HAS(error_of([&] { read_task_file("squad", tmp / "dev-v1.1.json", false); }),
             "dev-v1.1.json: field 'data[0].paragraphs[0].qas[0].question' is missing");
  write_text(tmp / "s.json", R"({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": []}]}]}]})");
  EXPECT_HAS(error_of([&] { read_task_file("squad", tmp / "s.json", false); }),
             "s.json: data[0].paragraphs[0].qas[0]: task squad: field 'answers.text' is empty");
  write_text(tmp / "d.json", R"({"p1": {"passage": "x", "qa_pairs": [{"question": "q", "answer": {"number": 3, "date": {}, "spans": []}}]}})");
  EXPECT_HAS(error_of([&] { read_task_file("drop", tmp / "d.json", true); }),
             "d.json: field 'p1.qa_pairs[0].answer.number' must be a string, got 3");
  write_text(tmp / "e.json", "{\"data\": [");
  EXPECT_HAS(error_of([&] { read_task_file("squad", tmp / "e.json", false); }), "e.json: invalid JSON at byte");
  // Missing files: the names looked for.
  EXPECT_HAS(error_of([&] { read_task_split("copa", tmp.path(), SplitKind::Validation); }),
             "no validation split for task copa (looked for validation.jsonl, val.jsonl, dev.jsonl)");
  EXPECT_HAS(error_of([&] { read_task_file("wic", tmp / "a.tsv", true); }), "TSV files are read for sst2 only");
  EXPECT_HAS(error_of([&] { read_task_split("nope", tmp.path(), SplitKind::Train); }), "unknown task 'nope'");
}

// The data `zotune train --task T --data-dir D` trains on, for every task:
// MeZO's sample in zotune's own shapes, tokenized by the trainer's Dataset.
TEST(EvalFiles, MezoTaskDataForEveryTask) {
  const Tokenizer tok = Tokenizer::load(test::tokenizer_data("gpt2"));
  for (const std::string task : kTasks) {
    SCOPED_TRACE(task);
    const MezoTaskData m = mezo_task_data(task, official_dir(task), 2, 1, 1, 0);
    const TaskSplit train = read_task_split(task, official_dir(task), SplitKind::Train);
    const MezoSample want = mezo_sample(static_cast<int64_t>(train.examples.size()), 9, 2, 1, 1, 0);
    EXPECT_EQ(m.train_ids, want.train);
    EXPECT_EQ(m.dev_ids, want.dev);
    const Dataset tr = Dataset::parse_jsonl(m.train_jsonl, "train", {}, &tok);
    const Dataset dev = Dataset::parse_jsonl(m.dev_jsonl, "dev", {}, &tok);
    EXPECT_EQ(tr.size(), 2);
    EXPECT_EQ(dev.size(), 1);
    const bool generation = task == "squad" || task == "drop";
    EXPECT_EQ(tr.objective(), generation ? Objective::Completion : Objective::Classification);
    ASSERT_EQ(m.test.size(), 1u);
    // The training example equals apply_task's on the same record (tasks.h).
    const TaskExample ex = training_example(task, train.examples[static_cast<std::size_t>(m.train_ids[0])]);
    const Json first = Json::parse(m.train_jsonl.substr(0, m.train_jsonl.find('\n')));
    EXPECT_EQ(first["prompt"], ex.prompt);
    if (!generation) {
      EXPECT_EQ(first["label"].get<std::vector<int32_t>>(), ex.correct);
    }
  }
}

TEST(EvalFiles, PlainShapes) {
  TempDir tmp;
  write_text(tmp / "c.jsonl", "{\"prompt\": \"Q: 2+2? A: \", \"candidates\": [\"4\", \"5\"], \"label\": [0]}\n");
  const auto c = read_plain_eval_file(tmp / "c.jsonl");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ex.prompt, "Q: 2+2? A: ");  // verbatim
  EXPECT_EQ(c[0].ex.correct, (std::vector<int32_t>{0}));
  write_text(tmp / "g.jsonl", "{\"prompt\": \"Capital of France?\", \"completion\": \" Paris\\n\"}\n");
  EXPECT_EQ(read_plain_eval_file(tmp / "g.jsonl")[0].answers, (std::vector<std::string>{"Paris"}));
  write_text(tmp / "x.jsonl", "{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"p\", \"candidates\": [\"a\"], \"label\": 3}\n");
  EXPECT_HAS(error_of([&] { read_plain_eval_file(tmp / "x.jsonl"); }),
             "x.jsonl:2: field 'label' must be a candidate index in [0, 1), got 3");
}

// ------------------------------------------------------------------- prompts

TEST(EvalPrompts, MatchMezoTemplatesZeroShotIclAndSfc) {
  std::ifstream in(testing::golden_dir() / "eval_prompts.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const Json g = Json::parse(line);
    const std::string task = g["task"].get<std::string>();
    const auto id = g["id"].get<std::size_t>();
    SCOPED_TRACE(task + " " + std::to_string(id));
    const TaskSplit train = read_task_split(task, eval_data() / "hf" / task, SplitKind::Train);
    const TaskSplit valid = read_task_split(task, eval_data() / "hf" / task, SplitKind::Validation);
    const TaskRender* demos[] = {&train.examples[1], &train.examples[0]};
    const TaskRender& r = valid.examples.at(id);
    const auto check = [&](const TaskExample& ex, const Json& want) {
      EXPECT_EQ(ex.prompt, want["prompt"].get<std::string>());
      EXPECT_EQ(ex.candidates, want["candidates"].get<std::vector<std::string>>());
    };
    check(with_demonstrations(task, r, {}), g["zero_shot"]);
    check(with_demonstrations(task, r, demos), g["icl"]);
    if (g.contains("sfc")) check(calibration_example(task, r), g["sfc"]);
    ++n;
  }
  EXPECT_EQ(n, 35);
}

// Hand-checked layouts: demonstrations (gold verbalizations, stripped) joined
// by a blank line, then the test example.
TEST(EvalPrompts, HandCheckedIclLayout) {
  const TaskSplit train = read_task_split("copa", eval_data() / "hf" / "copa", SplitKind::Train);
  const TaskSplit valid = read_task_split("copa", eval_data() / "hf" / "copa", SplitKind::Validation);
  const TaskRender* demos[] = {&train.examples[0], &train.examples[1]};
  const TaskExample ex = with_demonstrations("copa", valid.examples[0], demos);
  EXPECT_EQ(ex.prompt,
            "My body cast a shadow over the grass because the sun was rising.\n\n"
            "The man turned on the faucet so water flowed from the spout.\n\n"
            "The woman was in a bad mood so");
  EXPECT_EQ(ex.candidates, (std::vector<std::string>{" she told her friend to leave her alone.", " she gave her friend a hug."}));

  const TaskSplit st = read_task_split("squad", eval_data() / "squad", SplitKind::Train);
  const TaskSplit sv = read_task_split("squad", eval_data() / "squad", SplitKind::Validation);
  const TaskRender* sd[] = {&st.examples[2]};
  EXPECT_EQ(with_demonstrations("squad", sv.examples[1], sd).prompt,
            "Title: Rivers\nContext: The Rhine flows through six countries and ends in the North Sea.\n"
            "Question: Where does the Rhine end?\nAnswer: the North Sea\n\n"
            "Title: Bakery\nContext: The bakery in Köln sells rye bread, pretzels and cakes. It opens at 7 a.m.\n"
            "Question: When does it open?\nAnswer:");
  EXPECT_EQ(sv.examples[1].answers, (std::vector<std::string>{"7 a.m.", "at 7 a.m.", "7 a.m."}));
  EXPECT_HAS(error_of([&] { make_eval_example("squad", sv.examples[1], {}, Calibration::Sfc); }), "calibration (SFC) is for classification");
}

// MeZO --icl_sfc: the calibration prompt after the demonstrations, in the
// ICL layout (encode_prompt with encode_sfc / verbalize_sfc); --sfc without them.
TEST(EvalPrompts, HandCheckedIclSfcCalibration) {
  const TaskSplit train = read_task_split("copa", eval_data() / "hf" / "copa", SplitKind::Train);
  const TaskSplit valid = read_task_split("copa", eval_data() / "hf" / "copa", SplitKind::Validation);
  const TaskRender* demos[] = {&train.examples[0], &train.examples[1]};
  const EvalExample icl_sfc = make_eval_example("copa", valid.examples[0], demos, Calibration::IclSfc);
  EXPECT_TRUE(icl_sfc.calibrate);
  EXPECT_EQ(icl_sfc.sfc.prompt,
            "My body cast a shadow over the grass because the sun was rising.\n\n"
            "The man turned on the faucet so water flowed from the spout.\n\n"
            "so");
  EXPECT_EQ(icl_sfc.sfc.candidates,
            (std::vector<std::string>{" she told her friend to leave her alone.", " she gave her friend a hug."}));
  // The scored prompt is the ICL one either way; --sfc calibrates without demonstrations.
  EXPECT_EQ(icl_sfc.ex.prompt, with_demonstrations("copa", valid.examples[0], demos).prompt);
  const EvalExample sfc = make_eval_example("copa", valid.examples[0], demos, Calibration::Sfc);
  EXPECT_EQ(sfc.sfc.prompt, "so");
  EXPECT_EQ(sfc.sfc.candidates, icl_sfc.sfc.candidates);
  EXPECT_FALSE(make_eval_example("copa", valid.examples[0], demos, Calibration::None).calibrate);

  const TaskSplit st = read_task_split("sst2", eval_data() / "hf" / "sst2", SplitKind::Train);
  const TaskSplit sv = read_task_split("sst2", eval_data() / "hf" / "sst2", SplitKind::Validation);
  const TaskRender* sd[] = {&st.examples[1], &st.examples[0]};
  const TaskExample cal = calibration_example("sst2", sv.examples[0], sd);
  EXPECT_EQ(cal.prompt, "the plot goes nowhere It was terrible\n\na warm , funny and moving film It was great\n\nIt was");
  EXPECT_EQ(cal.candidates, (std::vector<std::string>{" terrible", " great"}));
  EXPECT_EQ(calibration_example("sst2", sv.examples[0]).prompt, "It was");
}

}  // namespace
}  // namespace zotune
