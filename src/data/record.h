// One JSONL line of a dataset, typed: which of the six shapes it has and its
// fields. Internal to src/data (dataset.cpp tokenizes and stores these).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"
#include "io/json_file.h"

namespace zotune::data {

enum class Shape : uint8_t {
  Text,                 // {"text"}
  PromptCompletion,     // {"prompt", "completion"}
  PromptCandidates,     // {"prompt", "candidates", "label"}
  InputIds,             // {"input_ids"}
  PromptCompletionIds,  // {"prompt_ids", "completion_ids"}
  PromptCandidateIds,   // {"prompt_ids", "candidate_ids", "label"}
};

const char* shape_name(Shape s);
Objective shape_objective(Shape s);
bool shape_is_tokenized(Shape s);

struct Record {
  Shape shape = Shape::Text;
  std::string text;  // Text: the text; the prompt otherwise
  std::string completion;
  std::vector<std::string> candidates;
  std::vector<int32_t> ids;  // InputIds: the ids; the prompt ids otherwise
  std::vector<int32_t> completion_ids;
  std::vector<std::vector<int32_t>> candidate_ids;
  // Classification: the correct candidates, [0] the training label. "label"
  // is an integer or a non-empty array of integers (any of them counts as
  // correct in evaluation, as MeZO scores ReCoRD).
  std::vector<int32_t> correct;
};

// Reads one parsed line. `vocab_size` bounds pre-tokenized ids (0 = unknown,
// which is an error for those shapes). Errors name the field only; the caller
// prefixes the file and line.
Record parse_record(const Json& j, int64_t vocab_size);

}  // namespace zotune::data
