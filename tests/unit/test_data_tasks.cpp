// MeZO task templates: one record per task against the prompt text MeZO's
// large_models/templates.py builds for it (each template's f-string is quoted
// above its test), after encode_prompt()'s strip(' ') handling.
#include <gtest/gtest.h>

#include "base/error.h"
#include "data/dataset.h"
#include "data/tasks.h"
#include "data/text.h"

namespace zotune {
namespace {

using Strings = std::vector<std::string>;
using Labels = std::vector<int32_t>;

TaskExample run(const char* task, const char* record) { return apply_task(task, Json::parse(record)); }

std::string error_of(const char* task, const char* record) {
  try {
    run(task, record);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << record;
  return {};
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// SST2Template: encode f"{text} It was", verbalize f"{text} It was {self.verbalizer[candidate]}",
// verbalizer {0: "terrible", 1: "great"}, text = sentence.strip().
TEST(DataTasks, Sst2) {
  const auto ex = run("sst2", R"({"sentence": "a gorgeous , witty , seductive movie . ", "label": 1, "idx": 7})");
  EXPECT_EQ(ex.objective, Objective::Classification);
  EXPECT_EQ(ex.prompt, "a gorgeous , witty , seductive movie . It was");
  EXPECT_EQ(ex.candidates, (Strings{" terrible", " great"}));
  EXPECT_EQ(ex.correct, (Labels{1}));
}

// RTETemplate: f"{premise}\nDoes this mean that \"{hypothesis}\" is true? Yes or No?\n{verbalizer}",
// verbalizer {0: "Yes", 1: "No"}.
TEST(DataTasks, Rte) {
  const auto ex = run("rte", R"({"premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
                                 "hypothesis": "Weapons of Mass Destruction Found in Iraq.", "label": 1})");
  EXPECT_EQ(ex.prompt,
            "No Weapons of Mass Destruction Found in Iraq Yet.\nDoes this mean that \"Weapons of Mass Destruction "
            "Found in Iraq.\" is true? Yes or No?\n");
  EXPECT_EQ(ex.candidates, (Strings{"Yes", "No"}));
  EXPECT_EQ(ex.correct, (Labels{1}));
}

// CBTemplate: f"Suppose {premise} Can we infer that \"{hypothesis}\"? Yes, No, or Maybe?\n{verbalizer}",
// verbalizer {0: "Yes", 1: "No", 2: "Maybe"}.
TEST(DataTasks, Cb) {
  const auto ex = run("CB", R"({"premise": "It was a complex language.", "hypothesis": "the language was peeled down",
                                "label": 2})");
  EXPECT_EQ(ex.prompt, "Suppose It was a complex language. Can we infer that \"the language was peeled down\"? Yes, No, or Maybe?\n");
  EXPECT_EQ(ex.candidates, (Strings{"Yes", "No", "Maybe"}));
  EXPECT_EQ(ex.correct, (Labels{2}));
}

// BoolQTemplateV3 (MeZO's default for BoolQ): question gets a "?" if it has none and an
// upper-case first letter; f"{passage} {question}\n{candidate}", candidates ["Yes", "No"].
TEST(DataTasks, BoolQ) {
  const auto ex = run("boolq", R"({"question": "do iran and afghanistan speak the same language",
                                   "answer": true, "passage": "Persian language -- Persian is a Western Iranian language."})");
  EXPECT_EQ(ex.prompt, "Persian language -- Persian is a Western Iranian language. Do iran and afghanistan speak the same language?\n");
  EXPECT_EQ(ex.candidates, (Strings{"Yes", "No"}));
  EXPECT_EQ(ex.correct, (Labels{0}));
  // super_glue's form (label 0 = False) and a question that already ends with "?".
  const auto sg = run("boolq", R"({"question": "is it?", "label": 0, "passage": "P."})");
  EXPECT_EQ(sg.prompt, "P. Is it?\n");
  EXPECT_EQ(sg.correct, (Labels{1}));
  // Python's str.upper() on the first character is the full Unicode mapping.
  EXPECT_EQ(run("boolq", R"({"question": "éte", "answer": false, "passage": "P."})").prompt, "P. Éte?\n");
}

// WSCTemplate: f"{text}\nIn the previous sentence, does the pronoun \"{span2.lower()}\" refer to {span1}?
// Yes or No?\n{verbalizer}", verbalizer {0: "No", 1: "Yes"}.
TEST(DataTasks, Wsc) {
  const auto ex = run("wsc", R"({"text": "Mark told Pete many lies about himself. He should have been more truthful.",
                                 "span1_index": 0, "span2_index": 7, "span1_text": "Mark", "span2_text": "He", "label": 1})");
  EXPECT_EQ(ex.prompt,
            "Mark told Pete many lies about himself. He should have been more truthful.\nIn the previous sentence, "
            "does the pronoun \"he\" refer to Mark? Yes or No?\n");
  EXPECT_EQ(ex.candidates, (Strings{"No", "Yes"}));
  EXPECT_EQ(ex.correct, (Labels{1}));
}

// WICTemplate: f"Does the word \"{word}\" have the same meaning in these two sentences? Yes, No?\n{sent1}\n{sent2}\n{verbalizer}",
// verbalizer {0: "No", 1: "Yes"}.
TEST(DataTasks, Wic) {
  const auto ex = run("wic", R"({"word": "place", "sentence1": "Do you want to come over to my place later?",
                                 "sentence2": "A political system with no place for the less prominent groups.", "label": 0})");
  EXPECT_EQ(ex.prompt,
            "Does the word \"place\" have the same meaning in these two sentences? Yes, No?\nDo you want to come over "
            "to my place later?\nA political system with no place for the less prominent groups.\n");
  EXPECT_EQ(ex.candidates, (Strings{"No", "Yes"}));
  EXPECT_EQ(ex.correct, (Labels{0}));
}

// MultiRCTemplate: f"{paragraph}\nQuestion: {question}\nI found this answer \"{answer}\". Is that correct? Yes or No?\n{verbalizer}",
// verbalizer {0: "No", 1: "Yes"}.
TEST(DataTasks, MultiRc) {
  const auto ex = run("MultiRC", R"({"paragraph": "While this process moved along, diplomacy continued.",
                                     "question": "What continued?", "answer": "Diplomacy", "label": 1})");
  EXPECT_EQ(ex.prompt,
            "While this process moved along, diplomacy continued.\nQuestion: What continued?\nI found this answer "
            "\"Diplomacy\". Is that correct? Yes or No?\n");
  EXPECT_EQ(ex.candidates, (Strings{"No", "Yes"}));
  EXPECT_EQ(ex.correct, (Labels{1}));
}

// CopaTemplate: premise.rstrip() without its final ".", + " because " (cause) or " so " (effect);
// candidate's first word lower-cased unless it is "I"; encode_prompt's strip(' ') moves the
// conjunction's trailing space to the candidate.
TEST(DataTasks, Copa) {
  const auto ex = run("copa", R"({"premise": "My body cast a shadow over the grass. ", "choice1": "The sun was rising.",
                                  "choice2": "The grass was cut.", "question": "cause", "label": 0})");
  EXPECT_EQ(ex.prompt, "My body cast a shadow over the grass because");
  EXPECT_EQ(ex.candidates, (Strings{" the sun was rising.", " the grass was cut."}));
  EXPECT_EQ(ex.correct, (Labels{0}));
  const auto effect = run("copa", R"({"premise": "I ran out of money.", "choice1": "I went home.",
                                      "choice2": "My Friend paid.", "question": "effect", "label": 1})");
  EXPECT_EQ(effect.prompt, "I ran out of money so");
  EXPECT_EQ(effect.candidates, (Strings{" I went home.", " my Friend paid."}));
  EXPECT_HAS(error_of("copa", R"({"premise": "a", "choice1": "b", "choice2": "c", "question": "why", "label": 0})"),
             "task copa: field 'question' must be \"cause\" or \"effect\"");
}

// ReCoRDTemplateGPT3 (MeZO's ReCoRD default): passage with "@highlight\n" -> "- ";
// encode f"{passage}\n-", verbalize f"{passage}\n- {query with @placeholder -> candidate}";
// candidates = entities, correct = the answers.
TEST(DataTasks, Record) {
  const auto ex = run("ReCoRD", R"({"passage": "The boat sank.\n@highlight\nCoast Guard helped\n@highlight\nAll safe",
                                    "query": "@placeholder said the crew of @placeholder was safe",
                                    "entities": ["Maine", "Coast Guard"], "answers": ["Coast Guard"]})");
  EXPECT_EQ(ex.prompt, "The boat sank.\n- Coast Guard helped\n- All safe\n-");
  EXPECT_EQ(ex.candidates, (Strings{" Maine said the crew of Maine was safe", " Coast Guard said the crew of Coast Guard was safe"}));
  EXPECT_EQ(ex.correct, (Labels{1}));
  const auto two = run("record", R"({"passage": "p", "query": "q @placeholder", "entities": ["A", "B", "C"],
                                     "answers": ["C", "A", "C"]})");
  EXPECT_EQ(two.correct, (Labels{2, 0}));
  EXPECT_HAS(error_of("record", R"({"passage": "p", "query": "q", "entities": ["A"], "answers": ["Z"]})"),
             "task record: field 'answers' holds \"Z\", which is not one of the entities");
  EXPECT_HAS(error_of("record", R"({"passage": "p", "query": "q", "entities": ["A"], "answers": []})"),
             "task record: field 'answers' is empty");
}

// SQuADv2Template (MeZO uses it for SQuAD): f"Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:",
// verbalize adds f" {answer}\n" with the first answer; question.strip().
TEST(DataTasks, Squad) {
  const auto ex = run("squad", R"({"id": "5733be", "title": "Super_Bowl_50",
      "context": "Super Bowl 50 was an American football game.",
      "question": "Which NFL team won Super Bowl 50? ",
      "answers": {"text": ["Denver Broncos", "Broncos"], "answer_start": [177, 184]}})");
  EXPECT_EQ(ex.objective, Objective::Completion);
  EXPECT_EQ(ex.prompt,
            "Title: Super_Bowl_50\nContext: Super Bowl 50 was an American football game.\nQuestion: Which NFL team "
            "won Super Bowl 50?\nAnswer:");
  EXPECT_EQ(ex.completion, " Denver Broncos\n");
  EXPECT_HAS(error_of("squad", R"({"title": "t", "context": "c", "question": "q", "answers": {"text": []}})"),
             "task squad: field 'answers.text' is empty");
}

// DROPTemplate: f"Passage: {context}\nQuestion: {question}\nAnswer:" + f" {answer}\n", question.strip(),
// context = passage, answers = answers_spans.spans.
TEST(DataTasks, Drop) {
  const auto ex = run("drop", R"({"section_id": "nfl_2201", "query_id": "f37e81fa",
      "passage": "Hoping to rebound from their loss, the Raiders played.",
      "question": " Who scored the first touchdown of the game?",
      "answers_spans": {"spans": ["Chaz Schilens"], "types": ["span"]}})");
  EXPECT_EQ(ex.objective, Objective::Completion);
  EXPECT_EQ(ex.prompt,
            "Passage: Hoping to rebound from their loss, the Raiders played.\nQuestion: Who scored the first "
            "touchdown of the game?\nAnswer:");
  EXPECT_EQ(ex.completion, " Chaz Schilens\n");
}

TEST(DataTasks, NamesAndFieldErrors) {
  EXPECT_EQ(task_names().size(), 11u);
  EXPECT_EQ(canonical_task_name("SST-2"), "sst2");
  EXPECT_EQ(canonical_task_name("Multi_RC"), "multirc");
  EXPECT_EQ(canonical_task_name("mnli"), "");
  EXPECT_HAS(error_of("mnli", "{}"), "unknown task 'mnli' (known: sst2, rte,");
  EXPECT_HAS(error_of("rte", R"({"premise": "a", "label": 0})"), "task rte: missing field 'hypothesis'");
  EXPECT_HAS(error_of("rte", R"({"premise": "a", "hypothesis": 3, "label": 0})"),
             "task rte: field 'hypothesis' must be a string");
  EXPECT_HAS(error_of("sst2", R"({"sentence": "a", "label": -1})"), "task sst2: field 'label' = -1 is out of range [0, 2)");
  EXPECT_HAS(error_of("cb", R"({"premise": "a", "hypothesis": "b", "label": 3})"), "task cb: field 'label' = 3");
  EXPECT_HAS(error_of("sst2", "[1]"), "task sst2: the record is not a JSON object");
}

TEST(DataTasks, DatasetNamesTheLineOfABadRecord) {
  DatasetOptions o;
  o.task = "rte";
  try {
    Dataset::parse_jsonl("{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": 0}\n\n{\"premise\": \"a\", \"label\": 0}\n",
                         "rte.jsonl", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    // Line 1 is fine up to tokenization; with no tokenizer it fails first.
    EXPECT_HAS(e.what(), "rte.jsonl:1: shape {prompt, candidates, label} holds text, which needs a tokenizer");
  }
  try {
    Dataset::parse_jsonl("\n\n{\"premise\": \"a\", \"label\": 0}\n", "rte.jsonl", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "rte.jsonl:3: task rte: missing field 'hypothesis'");
  }
  o.task = "nope";
  EXPECT_THROW(Dataset::parse_jsonl("{}\n", "x.jsonl", o), Error);
}

TEST(DataText, PythonStringSemantics) {
  using namespace data;
  EXPECT_EQ(py_strip(" \t\n a b \xC2\xA0\x1C"), "a b");  // U+00A0 and U+001C are Python whitespace
  EXPECT_EQ(py_strip("\xE3\x80\x80x\xE2\x80\xA8"), "x");  // U+3000, U+2028
  EXPECT_EQ(py_strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");  // U+200B is not
  EXPECT_EQ(py_lstrip("  a  "), "a  ");
  EXPECT_EQ(py_rstrip("  a  "), "  a");
  EXPECT_EQ(strip_spaces(" \na \n "), "\na \n");
  EXPECT_EQ(strip_spaces("   "), "");
  EXPECT_EQ(py_lower("The ÀÉ İ ΣΑΣ"), "the àé i̇ σας");  // full mappings and final sigma, as Python
  EXPECT_EQ(py_upper_first("ßa"), "SSa");
  EXPECT_EQ(py_upper_first(""), "");
  EXPECT_EQ(replace_all("a@x@", "@", "--"), "a--x--");
}

}  // namespace
}  // namespace zotune
