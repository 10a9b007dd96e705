#include "data/record.h"

#include "base/error.h"

namespace zotune::data {

const char* shape_name(Shape s) {
  switch (s) {
    case Shape::Text: return "{text}";
    case Shape::PromptCompletion: return "{prompt, completion}";
    case Shape::PromptCandidates: return "{prompt, candidates, label}";
    case Shape::InputIds: return "{input_ids}";
    case Shape::PromptCompletionIds: return "{prompt_ids, completion_ids}";
    case Shape::PromptCandidateIds: return "{prompt_ids, candidate_ids, label}";
  }
  return "?";
}

Objective shape_objective(Shape s) {
  switch (s) {
    case Shape::Text:
    case Shape::InputIds: return Objective::LanguageModel;
    case Shape::PromptCompletion:
    case Shape::PromptCompletionIds: return Objective::Completion;
    case Shape::PromptCandidates:
    case Shape::PromptCandidateIds: return Objective::Classification;
  }
  return Objective::LanguageModel;
}

bool shape_is_tokenized(Shape s) {
  return s == Shape::InputIds || s == Shape::PromptCompletionIds || s == Shape::PromptCandidateIds;
}

namespace {

const Json& field(const Json& j, const char* key) {
  if (!j.contains(key)) fail("missing field '", key, "'");
  return j[key];
}

std::string string_field(const Json& v, const std::string& what, bool allow_empty) {
  if (!v.is_string()) fail("field '", what, "' must be a string, got ", json_excerpt(v));
  std::string s = v.get<std::string>();
  if (!allow_empty && s.empty()) fail("field '", what, "' is empty");
  return s;
}

std::vector<int32_t> ids_field(const Json& v, const std::string& what, int64_t vocab_size, bool allow_empty) {
  if (!v.is_array()) fail("field '", what, "' must be an array of token ids, got ", json_excerpt(v));
  if (!allow_empty && v.empty()) fail("field '", what, "' is empty");
  if (vocab_size <= 0)
    fail("field '", what, "': pre-tokenized ids need the vocabulary size (give a tokenizer or DatasetOptions::vocab_size)");
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const Json& x = v[i];
    if (!x.is_number_integer()) fail("field '", what, "'[", i, "] is not an integer: ", json_excerpt(x));
    const int64_t id = x.get<int64_t>();
    if (id < 0 || id >= vocab_size)
      fail("field '", what, "'[", i, "] = ", id, " is outside the vocabulary [0, ", vocab_size, ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

std::vector<int32_t> labels_field(const Json& j, std::size_t num_candidates) {
  const Json& v = field(j, "label");
  std::vector<int32_t> out;
  auto add = [&](const Json& x, const std::string& what) {
    if (!x.is_number_integer()) fail("field '", what, "' must be an integer, got ", json_excerpt(x));
    const int64_t k = x.get<int64_t>();
    if (k < 0 || k >= static_cast<int64_t>(num_candidates))
      fail("field '", what, "' = ", k, " is out of range for ", num_candidates, " candidates");
    out.push_back(static_cast<int32_t>(k));
  };
  if (v.is_array()) {
    if (v.empty()) fail("field 'label' is an empty array");
    for (std::size_t i = 0; i < v.size(); ++i) add(v[i], "label[" + std::to_string(i) + "]");
  } else {
    add(v, "label");
  }
  return out;
}

Shape detect_shape(const Json& j) {
  const char* primaries[] = {"text", "input_ids", "prompt", "prompt_ids"};
  const char* found = nullptr;
  for (const char* key : primaries) {
    if (!j.contains(key)) continue;
    if (found) fail("ambiguous line: it has both '", found, "' and '", key, "'");
    found = key;
  }
  if (!found)
    fail("no known field: expected 'text', 'prompt' with 'completion' or 'candidates', 'input_ids', "
         "or 'prompt_ids' with 'completion_ids' or 'candidate_ids'");
  const std::string key = found;
  if (key == "text") return Shape::Text;
  if (key == "input_ids") return Shape::InputIds;
  const bool ids = key == "prompt_ids";
  const char* completion = ids ? "completion_ids" : "completion";
  const char* candidates = ids ? "candidate_ids" : "candidates";
  const bool has_completion = j.contains(completion), has_candidates = j.contains(candidates);
  if (has_completion && has_candidates) fail("ambiguous line: it has both '", completion, "' and '", candidates, "'");
  if (!has_completion && !has_candidates) fail("missing field '", completion, "' or '", candidates, "'");
  if (ids) return has_completion ? Shape::PromptCompletionIds : Shape::PromptCandidateIds;
  return has_completion ? Shape::PromptCompletion : Shape::PromptCandidates;
}

}  // namespace

Record parse_record(const Json& j, int64_t vocab_size) {
  if (!j.is_object()) fail("a line must be a JSON object, got ", json_excerpt(j));
  Record r;
  r.shape = detect_shape(j);
  switch (r.shape) {
    case Shape::Text:
      r.text = string_field(field(j, "text"), "text", false);
      break;
    case Shape::PromptCompletion:
      r.text = string_field(field(j, "prompt"), "prompt", true);
      r.completion = string_field(field(j, "completion"), "completion", false);
      break;
    case Shape::PromptCandidates: {
      r.text = string_field(field(j, "prompt"), "prompt", true);
      const Json& c = field(j, "candidates");
      if (!c.is_array()) fail("field 'candidates' must be an array of strings, got ", json_excerpt(c));
      if (c.empty()) fail("field 'candidates' is empty");
      for (std::size_t i = 0; i < c.size(); ++i)
        r.candidates.push_back(string_field(c[i], "candidates[" + std::to_string(i) + "]", false));
      r.correct = labels_field(j, r.candidates.size());
      break;
    }
    case Shape::InputIds:
      r.ids = ids_field(field(j, "input_ids"), "input_ids", vocab_size, false);
      break;
    case Shape::PromptCompletionIds:
      r.ids = ids_field(field(j, "prompt_ids"), "prompt_ids", vocab_size, true);
      r.completion_ids = ids_field(field(j, "completion_ids"), "completion_ids", vocab_size, false);
      break;
    case Shape::PromptCandidateIds: {
      r.ids = ids_field(field(j, "prompt_ids"), "prompt_ids", vocab_size, true);
      const Json& c = field(j, "candidate_ids");
      if (!c.is_array()) fail("field 'candidate_ids' must be an array of id arrays, got ", json_excerpt(c));
      if (c.empty()) fail("field 'candidate_ids' is empty");
      for (std::size_t i = 0; i < c.size(); ++i)
        r.candidate_ids.push_back(ids_field(c[i], "candidate_ids[" + std::to_string(i) + "]", vocab_size, false));
      r.correct = labels_field(j, r.candidate_ids.size());
      break;
    }
  }
  return r;
}

}  // namespace zotune::data
