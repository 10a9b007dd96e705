// A MeZO task's splits read from the files users download, each record turned
// into the Hugging Face datasets' shape that tasks.h renders.
//
// Files looked for in --data-dir, first match wins (docs/evaluation.md):
//   split        all tasks                      sst2       squad            drop
//   train        train.jsonl                    train.tsv  train-v1.1.json  drop_dataset_train.json
//   validation   validation.jsonl, val.jsonl,   dev.tsv    dev-v1.1.json    drop_dataset_dev.json
//                dev.jsonl
// (the task-specific names are tried before the .jsonl ones). MeZO evaluates on
// the validation split ("test" in its protocol); the official test files carry
// no labels and are never read.
//
// JSON-lines records may be the Hugging Face export's (flat fields, integer
// labels) or SuperGLUE's official release: string labels (RTE, CB), boolean
// labels (BoolQ, WiC, WSC), WSC's "target" object, MultiRC's and ReCoRD's
// nested passages (one record per answer / per query, in file order, as the
// Hugging Face loader flattens them; ReCoRD's entities are the passage's
// character spans [start, end], de-duplicated and sorted, as are its answers).
// SQuAD v1.1 JSON: one record per question, answers = every answer's text.
// DROP JSON: one record per question; answers from "answer" (train) or
// "validated_answers" (validation): a number, else a date "day month year",
// else the spans; a question with none of these is skipped, as the Hugging
// Face loader does. Errors name the file and the line or JSON path and field.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/tasks.h"

namespace zotune {

struct TaskSplit {
  std::string file;                  // the file read
  std::vector<TaskRender> examples;  // in the dataset's order; the index is the example id
  std::vector<std::string> origin;   // per example: "file:line" or "file: JSON path"
  int64_t skipped = 0;               // DROP questions without a usable answer
};

enum class SplitKind { Train, Validation };

// The file names tried for a split, in order.
std::vector<std::string> split_file_names(std::string_view task, SplitKind split);
// Reads the first file of split_file_names() that exists in `dir`.
TaskSplit read_task_split(std::string_view task, const std::filesystem::path& dir, SplitKind split);
// Reads one file; its format comes from its extension (.jsonl, .tsv, .json).
// `train` picks DROP's answer field.
TaskSplit read_task_file(std::string_view task, const std::filesystem::path& file, bool train);

}  // namespace zotune

namespace zotune {

struct EvalExample;
// A JSONL file in zotune's own shapes for evaluation: {"prompt", "candidates",
// "label"} (label an index or a list of correct indices) or {"prompt",
// "completion"} (generation; the gold answer is the completion stripped of
// whitespace, or the strings of an optional "answers" list). Prompts and
// candidates are used exactly as written. Errors name the file, line and field.
std::vector<EvalExample> read_plain_eval_file(const std::filesystem::path& file);

}  // namespace zotune

namespace zotune {

// MeZO's fine-tuning data for a task in `dir`: num_train + num_dev examples
// sampled from the train split with `seed` (dev = the last num_dev), num_test
// from the validation split (eval_protocol.h). Train and dev come as JSONL in
// zotune's own shapes ({"prompt", "candidates", "label": [correct...]} or
// {"prompt", "completion"}, the strings of tasks.h's training examples), the
// test set (and the dev set again) as zero-shot evaluation examples.
struct MezoTaskData {
  std::string train_file, validation_file;
  std::vector<int64_t> train_ids, dev_ids, test_ids;
  std::string train_jsonl, dev_jsonl;
  std::vector<EvalExample> test;
  std::vector<EvalExample> dev;  // the dev_ids' examples, as `test` (generation: scored by F1 in training)
};
MezoTaskData mezo_task_data(std::string_view task, const std::filesystem::path& dir, int64_t num_train,
                            int64_t num_dev, int64_t num_test, uint32_t seed);

}  // namespace zotune
