// Datasets: line shapes, errors with their line numbers, truncation, and the
// padded batches built from them. Token ids are written by hand (pre-tokenized
// lines), so expected batches are known without a tokenizer; the text shapes
// are checked against the GPT-2 tokenizer files when tests/data has them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "test_tokenizer_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace zotune {
namespace {

DatasetOptions ids_options(int64_t max_length = 0) {
  DatasetOptions o;
  o.vocab_size = 100;
  o.pad_id = 99;
  o.max_length = max_length;
  return o;
}

Dataset parse(const std::string& text, const DatasetOptions& o = ids_options()) {
  return Dataset::parse_jsonl(text, "f.jsonl", o);
}

std::vector<int32_t> vec(std::span<const int32_t> s) { return {s.begin(), s.end()}; }

Batch batch_of(const Dataset& ds, std::vector<int64_t> examples) {
  Batch b;
  fill_batch(ds, examples, b);
  return b;
}

// The message of the Error `text` raises (fails the test if none).
std::string error_of(const std::string& text, const DatasetOptions& o = ids_options()) {
  try {
    parse(text, o);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return {};
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(DataShapes, LanguageModelIdsBatch) {
  const Dataset ds = parse("{\"input_ids\": [5, 6, 7]}\n{\"input_ids\": [8, 9], \"note\": \"extra keys are ignored\"}\n");
  EXPECT_EQ(ds.objective(), Objective::LanguageModel);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.pad_id(), 99);
  const Batch b = batch_of(ds, {0, 1});
  EXPECT_EQ(b.objective, Objective::LanguageModel);
  EXPECT_EQ(b.B, 2);
  EXPECT_EQ(b.T, 3);
  EXPECT_EQ(b.ids, (std::vector<int32_t>{5, 6, 7, 8, 9, 99}));
  EXPECT_EQ(b.mask, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(b.rows, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{6, 7, 9}));
  EXPECT_EQ(b.target_seq, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_TRUE(b.seq_example.empty());
  EXPECT_TRUE(b.seq_candidate.empty());
  EXPECT_TRUE(b.labels.empty());
  EXPECT_EQ(b.num_examples, 2);
  EXPECT_EQ(b.example_ids, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(b.num_tokens(), 5);
  // Every target is the token right after its row, in the same sequence.
  for (std::size_t i = 0; i < b.rows.size(); ++i) {
    EXPECT_EQ(b.ids[b.rows[i] + 1], b.targets[i]);
    EXPECT_EQ(b.rows[i] / b.T, b.target_seq[i]);
  }
}

TEST(DataShapes, CompletionIdsScoresOnlyTheCompletion) {
  const Dataset ds = parse(
      "{\"prompt_ids\": [1, 2, 3], \"completion_ids\": [4, 5]}\n"
      "{\"prompt_ids\": [], \"completion_ids\": [6, 7]}\n");
  EXPECT_EQ(ds.objective(), Objective::Completion);
  EXPECT_EQ(vec(ds.tokens(0)), (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(ds.score_from(0), 3);
  // With no prompt the first completion token has nothing before it to predict it.
  EXPECT_EQ(ds.score_from(1), 1);
  const Batch b = batch_of(ds, {1, 0});
  EXPECT_EQ(b.T, 5);
  EXPECT_EQ(b.ids, (std::vector<int32_t>{6, 7, 99, 99, 99, 1, 2, 3, 4, 5}));
  EXPECT_EQ(b.mask, (std::vector<uint8_t>{1, 1, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.rows, (std::vector<int64_t>{0, 7, 8}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{7, 4, 5}));
  EXPECT_EQ(b.target_seq, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(b.example_ids, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(b.num_examples, 2);
}

TEST(DataShapes, ClassificationIdsExpandsCandidates) {
  const Dataset ds = parse(
      "{\"prompt_ids\": [1, 2], \"candidate_ids\": [[3], [4, 5]], \"label\": 1}\n"
      "\n"
      "{\"prompt_ids\": [7], \"candidate_ids\": [[8], [9], [10]], \"label\": [2, 0]}\n");
  EXPECT_EQ(ds.objective(), Objective::Classification);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.line(1), 3);
  EXPECT_EQ(ds.num_candidates(0), 2);
  EXPECT_EQ(ds.num_candidates(1), 3);
  EXPECT_EQ(ds.max_candidates(), 3);
  EXPECT_EQ(ds.label(0), 1);
  EXPECT_EQ(ds.label(1), 2);
  EXPECT_TRUE(ds.is_correct(1, 0));
  EXPECT_TRUE(ds.is_correct(1, 2));
  EXPECT_FALSE(ds.is_correct(1, 1));
  const Batch b = batch_of(ds, {0, 1});
  EXPECT_EQ(b.objective, Objective::Classification);
  EXPECT_EQ(b.B, 5);
  EXPECT_EQ(b.T, 4);
  const int32_t P = 99;
  EXPECT_EQ(b.ids, (std::vector<int32_t>{1, 2, 3, P, 1, 2, 4, 5, 7, 8, P, P, 7, 9, P, P, 7, 10, P, P}));
  EXPECT_EQ(b.mask, (std::vector<uint8_t>{1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(b.rows, (std::vector<int64_t>{1, 5, 6, 8, 12, 16}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{3, 4, 5, 8, 9, 10}));
  EXPECT_EQ(b.target_seq, (std::vector<int32_t>{0, 1, 1, 2, 3, 4}));
  EXPECT_EQ(b.seq_example, (std::vector<int32_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(b.seq_candidate, (std::vector<int32_t>{0, 1, 0, 1, 2}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(b.num_examples, 2);
}

TEST(DataShapes, LoadsFromFileWithCrlfAndBom) {
  testing::TempDir dir;
  const auto path = dir / "train.jsonl";
  std::ofstream(path, std::ios::binary) << "\xEF\xBB\xBF{\"input_ids\": [1, 2]}\r\n\r\n{\"input_ids\": [3, 4, 5]}";
  const Dataset ds = Dataset::load_jsonl(path, ids_options());
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(vec(ds.tokens(1)), (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(ds.line(1), 3);
  EXPECT_EQ(ds.source(), path.string());
}

TEST(DataErrors, NameFileLineAndField) {
  const std::string good = "{\"input_ids\": [1, 2]}\n\n";  // lines 1-2; the bad line is line 3
  EXPECT_HAS(error_of(good + "{\"input_ids\": [1, \n"), "f.jsonl:3: invalid JSON");
  EXPECT_HAS(error_of(good + "[1, 2]\n"), "f.jsonl:3: a line must be a JSON object");
  EXPECT_HAS(error_of(good + "{\"input_ids\": [1, 200]}\n"), "f.jsonl:3: field 'input_ids'[1] = 200 is outside the vocabulary [0, 100)");
  EXPECT_HAS(error_of(good + "{\"input_ids\": [1, -1]}\n"), "f.jsonl:3: field 'input_ids'[1] = -1");
  EXPECT_HAS(error_of(good + "{\"input_ids\": [1, 2.5]}\n"), "f.jsonl:3: field 'input_ids'[1] is not an integer");
  EXPECT_HAS(error_of(good + "{\"input_ids\": []}\n"), "f.jsonl:3: field 'input_ids' is empty");
  EXPECT_HAS(error_of(good + "{\"input_ids\": [7]}\n"), "f.jsonl:3: field 'input_ids' gives 1 token: nothing to predict");
  EXPECT_HAS(error_of(good + "{\"input_ids\": \"1 2\"}\n"), "f.jsonl:3: field 'input_ids' must be an array");
  EXPECT_HAS(error_of(good + "{\"ids\": [1]}\n"), "f.jsonl:3: no known field");
  EXPECT_HAS(error_of(good + "{\"prompt_ids\": [1, 2, 3, 4, 5, 6]}\n"),
             "f.jsonl:3: missing field 'completion_ids' or 'candidate_ids'");
  EXPECT_HAS(error_of(good + "{\"input_ids\": [1, 2], \"text\": \"a\"}\n"), "f.jsonl:3: ambiguous line");
  // A different shape than the file's first line.
  EXPECT_HAS(error_of(good + "{\"prompt_ids\": [1], \"completion_ids\": [2]}\n"),
             "f.jsonl:3: the line has shape {prompt_ids, completion_ids} but line 1 has {input_ids}");

  const std::string cls = "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]], \"label\": 0}\n";
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]], \"label\": 2}\n"),
             "f.jsonl:2: field 'label' = 2 is out of range for 2 candidates");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]], \"label\": -1}\n"),
             "f.jsonl:2: field 'label' = -1 is out of range");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]], \"label\": \"0\"}\n"),
             "f.jsonl:2: field 'label' must be an integer");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]], \"label\": [0, 5]}\n"),
             "f.jsonl:2: field 'label[1]' = 5 is out of range");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], [3]]}\n"), "f.jsonl:2: missing field 'label'");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [], \"label\": 0}\n"),
             "f.jsonl:2: field 'candidate_ids' is empty");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [1], \"candidate_ids\": [[2], []], \"label\": 0}\n"),
             "f.jsonl:2: field 'candidate_ids[1]' is empty");
  EXPECT_HAS(error_of(cls + "{\"prompt_ids\": [], \"candidate_ids\": [[2], [3, 4]], \"label\": 0}\n"),
             "f.jsonl:2: field 'candidate_ids[0]' has nothing to predict");

  EXPECT_HAS(error_of("\n  \n\n"), "f.jsonl: no examples");
  EXPECT_HAS(error_of(""), "f.jsonl: no examples");
  DatasetOptions no_vocab;
  EXPECT_HAS(error_of("{\"input_ids\": [1, 2]}\n", no_vocab), "f.jsonl:1: field 'input_ids': pre-tokenized ids need the vocabulary size");
}

TEST(DataErrors, TextShapesWithoutTokenizer) {
  // Field checks come before tokenization, so these need no tokenizer.
  EXPECT_HAS(error_of("{\"text\": \"hello\"}\n"), "f.jsonl:1: shape {text} holds text, which needs a tokenizer");
  EXPECT_HAS(error_of("\n{\"text\": \"\"}\n"), "f.jsonl:2: field 'text' is empty");
  EXPECT_HAS(error_of("{\"text\": 5}\n"), "f.jsonl:1: field 'text' must be a string");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"completion\": \"\"}\n"), "f.jsonl:1: field 'completion' is empty");
  EXPECT_HAS(error_of("{\"prompt\": 1, \"completion\": \"b\"}\n"), "f.jsonl:1: field 'prompt' must be a string");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"candidates\": [], \"label\": 0}\n"), "f.jsonl:1: field 'candidates' is empty");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"candidates\": \"b\", \"label\": 0}\n"),
             "f.jsonl:1: field 'candidates' must be an array");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"candidates\": [\"b\", 3], \"label\": 0}\n"),
             "f.jsonl:1: field 'candidates[1]' must be a string");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"candidates\": [\"b\"], \"label\": 1}\n"),
             "f.jsonl:1: field 'label' = 1 is out of range for 1 candidates");
  EXPECT_HAS(error_of("{\"prompt\": \"a\", \"completion\": \"b\", \"candidates\": [\"c\"]}\n"), "f.jsonl:1: ambiguous line");
  // Raw invalid UTF-8 inside a string, on line 2.
  EXPECT_HAS(error_of("{\"input_ids\": [1, 2]}\n{\"text\": \"caf\xC3\"}\n"), "f.jsonl:2: invalid UTF-8 at byte 14");
  EXPECT_HAS(error_of("{\"text\": \"a\xFF b\"}\n"), "f.jsonl:1: invalid UTF-8");
  // Escaped lone surrogates are not text either.
  EXPECT_HAS(error_of("{\"text\": \"a\\ud800\"}\n"), "f.jsonl:1: invalid JSON");
}

TEST(DataTruncation, PromptIsCutFromTheLeft) {
  std::vector<int32_t> out;
  bool cut = false;
  const std::vector<int32_t> prompt{10, 11, 12, 13}, answer{20, 21};
  EXPECT_EQ(append_prompt_answer(prompt, answer, 6, std::nullopt, out, cut), 4);  // fits exactly
  EXPECT_EQ(out, (std::vector<int32_t>{10, 11, 12, 13, 20, 21}));
  EXPECT_FALSE(cut);

  out.clear();
  EXPECT_EQ(append_prompt_answer(prompt, answer, 4, std::nullopt, out, cut), 2);
  EXPECT_EQ(out, (std::vector<int32_t>{12, 13, 20, 21}));
  EXPECT_TRUE(cut);

  out.clear();  // a leading BOS stays in front
  EXPECT_EQ(append_prompt_answer(prompt, answer, 4, 10, out, cut), 2);
  EXPECT_EQ(out, (std::vector<int32_t>{10, 13, 20, 21}));

  out.clear();  // 11 is not the prompt's first token: no special treatment
  EXPECT_EQ(append_prompt_answer(prompt, answer, 4, 11, out, cut), 2);
  EXPECT_EQ(out, (std::vector<int32_t>{12, 13, 20, 21}));
}

TEST(DataTruncation, LongAnswerKeepsItsHeadAndOnePromptToken) {
  std::vector<int32_t> out;
  bool cut = false;
  const std::vector<int32_t> prompt{10, 11, 12}, answer{20, 21, 22, 23, 24, 25};
  EXPECT_EQ(append_prompt_answer(prompt, answer, 4, std::nullopt, out, cut), 1);
  EXPECT_EQ(out, (std::vector<int32_t>{12, 20, 21, 22}));
  EXPECT_TRUE(cut);
  out.clear();
  EXPECT_EQ(append_prompt_answer(prompt, answer, 4, 10, out, cut), 1);
  EXPECT_EQ(out, (std::vector<int32_t>{10, 20, 21, 22}));
  out.clear();
  EXPECT_EQ(append_prompt_answer({}, answer, 4, 10, out, cut), 1);
  EXPECT_EQ(out, (std::vector<int32_t>{20, 21, 22, 23}));
}

TEST(DataTruncation, AppliedPerShape) {
  const Dataset lm = parse("{\"input_ids\": [1, 2, 3, 4, 5]}\n{\"input_ids\": [6, 7]}\n", ids_options(3));
  EXPECT_EQ(vec(lm.tokens(0)), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(vec(lm.tokens(1)), (std::vector<int32_t>{6, 7}));
  EXPECT_EQ(lm.num_truncated(), 1);
  EXPECT_EQ(lm.max_sequence_length(), 3);

  const Dataset comp = parse("{\"prompt_ids\": [1, 2, 3, 4], \"completion_ids\": [5, 6]}\n", ids_options(4));
  EXPECT_EQ(vec(comp.tokens(0)), (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(comp.score_from(0), 2);

  DatasetOptions o = ids_options(3);
  o.bos_id = 1;
  const Dataset cls = parse("{\"prompt_ids\": [1, 2, 3, 4], \"candidate_ids\": [[5], [6, 7], [8, 9, 10, 11]], \"label\": 0}\n", o);
  EXPECT_EQ(vec(cls.tokens(0)), (std::vector<int32_t>{1, 4, 5}));
  EXPECT_EQ(vec(cls.tokens(1)), (std::vector<int32_t>{1, 6, 7}));
  EXPECT_EQ(vec(cls.tokens(2)), (std::vector<int32_t>{1, 8, 9}));
  EXPECT_EQ(cls.score_from(0), 2);
  EXPECT_EQ(cls.score_from(1), 1);
  EXPECT_EQ(cls.score_from(2), 1);
  EXPECT_EQ(cls.num_truncated(), 3);

  EXPECT_HAS(error_of("{\"input_ids\": [1, 2]}\n", ids_options(1)), "max_length must be 0 (no limit) or at least 2");
}

// Text shapes need a real tokenizer: the GPT-2 files the tokenizer tests use.
class DataText : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = zotune::test::tokenizer_data("gpt2");  // fails (never skips) when missing
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  }
  Dataset text(const std::string& lines, DatasetOptions o = {}) {
    return Dataset::parse_jsonl(lines, "t.jsonl", o, tok_.get());
  }
  std::unique_ptr<Tokenizer> tok_;
};

// GPT-2 ids (tiktoken's gpt2 ranks): "Hello" 15496, " world" 995, "<|endoftext|>" 50256,
// "The" 464, " movie" 3807, " great" 1049, " terrible" 7818.
TEST_F(DataText, CompletionAppendsEosAndPadsWithIt) {
  const Dataset ds = text("{\"prompt\": \"Hello\", \"completion\": \" world\"}\n");
  EXPECT_EQ(ds.objective(), Objective::Completion);
  EXPECT_EQ(vec(ds.tokens(0)), (std::vector<int32_t>{15496, 995, 50256}));
  EXPECT_EQ(ds.score_from(0), 1);
  EXPECT_EQ(ds.pad_id(), 50256);  // GPT-2 has no pad token: EOS pads

  DatasetOptions no_eos;
  no_eos.append_eos = false;
  EXPECT_EQ(vec(text("{\"prompt\": \"Hello\", \"completion\": \" world\"}\n", no_eos).tokens(0)),
            (std::vector<int32_t>{15496, 995}));
}

TEST_F(DataText, LanguageModelAndClassification) {
  const Dataset lm = text("{\"text\": \"Hello world\"}\n");
  EXPECT_EQ(vec(lm.tokens(0)), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(lm.score_from(0), 1);

  const Dataset cls = text("{\"prompt\": \"The movie\", \"candidates\": [\" terrible\", \" great\"], \"label\": 1}\n");
  ASSERT_EQ(cls.num_candidates(0), 2);
  EXPECT_EQ(vec(cls.tokens(0)), (std::vector<int32_t>{464, 3807, 7818}));
  EXPECT_EQ(vec(cls.tokens(1)), (std::vector<int32_t>{464, 3807, 1049}));
  EXPECT_EQ(cls.score_from(1), 2);
  EXPECT_EQ(cls.label(0), 1);

  EXPECT_THROW(text("{\"text\": \"Hello\"}\n"), Error);  // one token: nothing to predict
}

TEST_F(DataText, TaskRecordsThroughTheTokenizer) {
  DatasetOptions o;
  o.task = "SST-2";
  const Dataset ds = text("{\"sentence\": \"The movie \", \"label\": 1, \"idx\": 0}\n", o);
  EXPECT_EQ(ds.objective(), Objective::Classification);
  // MeZO's SST-2 prompt "{text} It was" + " great" ("It" 632, " was" 373).
  EXPECT_EQ(vec(ds.tokens(1)), (std::vector<int32_t>{464, 3807, 632, 373, 1049}));
  EXPECT_EQ(ds.score_from(1), 4);
  EXPECT_EQ(ds.label(0), 1);
}

}  // namespace
}  // namespace zotune
