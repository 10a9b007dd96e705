// MeZO's task templates (Malladi et al. 2023, arXiv 2305.17333; the prompts of
// the princeton-nlp/MeZO large_models code): a raw record of a benchmark task,
// as the Hugging Face dataset gives it, becomes one example in zotune's own
// shapes — a prompt with candidates (classification, MeZO's
// --train_as_classification) or a prompt with a completion (generation tasks).
//
// Prompt and candidate strings follow MeZO's encode_prompt() with no
// demonstrations: prompt = template.encode(r).strip(' ').lstrip(), candidate
// k = the rest of template.verbalize(r, k).strip(' ') after that prompt. MeZO
// tokenizes prompt + candidate in one piece and scores the trailing tokens;
// zotune tokenizes them separately (dataset.h). With byte-level BPE (GPT-2,
// OPT, Qwen, LLaMA-3) the two agree for every template here, since each
// candidate starts at a pre-tokenizer boundary (" great", "Yes" after "\n").
//
// Tasks and the record fields they read (other fields are ignored):
//   sst2     sentence, label (0 terrible / 1 great)            glue/sst2
//   rte      premise, hypothesis, label (0 Yes / 1 No)         super_glue/rte
//   cb       premise, hypothesis, label (0 Yes / 1 No / 2 Maybe)  super_glue/cb
//   boolq    passage, question, answer (bool; true = Yes)      boolq
//            (or label: 1 = Yes, 0 = No, as in super_glue/boolq)
//   wsc      text, span1_text, span2_text, label (0 No / 1 Yes)  super_glue/wsc.fixed
//   wic      word, sentence1, sentence2, label (0 No / 1 Yes)  super_glue/wic
//   multirc  paragraph, question, answer, label (0 No / 1 Yes) super_glue/multirc
//   copa     premise, choice1, choice2, question ("cause"|"effect"), label (0|1)
//                                                              super_glue/copa
//   record   passage, query, entities [str], answers [str]     super_glue/record
//            candidates = entities; every answer is a correct candidate,
//            the first one is the training label
//   squad    title, context, question, answers {text: [str]}   squad (v1.1)
//   drop     passage, question, answers_spans {spans: [str]}   drop
// squad and drop are completions: " " + the first answer + "\n", as MeZO
// trains generation tasks (its verbalize() with the gold answer).
// BoolQ uses MeZO's default template for it (BoolQTemplateV3).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"
#include "io/json_file.h"

namespace zotune {

// One record as its MeZO template renders it, before encode_prompt() joins it
// with demonstrations (data/eval_protocol.h does that):
//   encoded       template.encode(r)
//   verbalized[k] template.verbalize(r, candidate k)   (Classification)
//   demo          template.verbalize(r, gold): the text of r as a demonstration
//   sfc_encoded, sfc_verbalized[k]  encode_sfc / verbalize_sfc (Classification;
//                 the calibration prompts of surface-form competition)
//   correct       Classification: the correct candidates, [0] the training label
//   answers       Completion: every gold answer (F1/EM take the max over them)
struct TaskRender {
  Objective objective = Objective::Classification;
  std::string encoded;
  std::vector<std::string> verbalized;
  std::string demo;
  std::string sfc_encoded;
  std::vector<std::string> sfc_verbalized;
  std::vector<int32_t> correct;
  std::vector<std::string> answers;
};

struct TaskExample {
  Objective objective = Objective::Classification;  // or Completion
  std::string prompt;
  std::vector<std::string> candidates;  // Classification
  std::vector<int32_t> correct;         // Classification: correct candidates; [0] is the label
  std::string completion;               // Completion
};

// The canonical names, lower case: sst2 rte cb boolq wsc wic multirc copa record squad drop.
std::span<const std::string_view> task_names();
// Case-insensitive, '-' and '_' ignored ("SST-2", "ReCoRD", "MultiRC" work);
// returns the canonical name, or "" if it names no task.
std::string canonical_task_name(std::string_view name);

// Throws zotune::Error naming the task and the field at fault; the dataset
// reader adds the file and line.
TaskExample apply_task(std::string_view task, const Json& record);
// The template's strings for one record (apply_task() is built on it).
TaskRender render_task(std::string_view task, const Json& record);
// The training example of a rendered record: apply_task(task, r) == training_example(task, render_task(task, r)).
TaskExample training_example(std::string_view task, const TaskRender& r);
// MeZO's encode_prompt() split of rendered strings into a prompt and the
// candidates that follow it: prompt = encoded.strip(' ') (lstripped when
// `lstrip_prompt`), candidate k = verbalized[k].strip(' ') minus that prompt.
// Throws naming the task if a candidate does not extend the prompt.
TaskExample split_candidates(std::string_view task, const std::string& encoded,
                             const std::vector<std::string>& verbalized, bool lstrip_prompt = true);

}  // namespace zotune
