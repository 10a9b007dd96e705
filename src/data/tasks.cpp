#include "data/tasks.h"

#include <algorithm>
#include <array>

#include "base/error.h"
#include "data/text.h"

namespace zotune {
namespace {

using data::py_lstrip;
using data::py_rstrip;
using data::py_strip;
using data::strip_spaces;

// Typed reads from one raw record; every message names the task and field.
class Fields {
 public:
  Fields(std::string_view task, const Json& r) : task_(task), r_(r) {
    if (!r.is_object()) fail("task ", task_, ": the record is not a JSON object");
  }
  const Json& get(const char* key) const {
    if (!r_.contains(key) || r_[key].is_null()) fail("task ", task_, ": missing field '", key, "'");
    return r_[key];
  }
  bool has(const char* key) const { return r_.contains(key) && !r_[key].is_null(); }
  std::string str(const char* key) const { return as_string(get(key), key); }
  std::string as_string(const Json& v, const std::string& what) const {
    if (!v.is_string()) fail("task ", task_, ": field '", what, "' must be a string, got ", json_excerpt(v));
    return v.get<std::string>();
  }
  int64_t integer(const char* key) const {
    const Json& v = get(key);
    if (!v.is_number_integer()) fail("task ", task_, ": field '", key, "' must be an integer, got ", json_excerpt(v));
    return v.get<int64_t>();
  }
  int32_t label(const char* key, int64_t num_classes) const {
    const int64_t k = integer(key);
    if (k < 0 || k >= num_classes)
      fail("task ", task_, ": field '", key, "' = ", k, " is out of range [0, ", num_classes, ")");
    return static_cast<int32_t>(k);
  }
  std::vector<std::string> strings(const Json& v, const std::string& what) const {
    if (!v.is_array()) fail("task ", task_, ": field '", what, "' must be an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i) out.push_back(as_string(v[i], what + "[" + std::to_string(i) + "]"));
    return out;
  }
  [[noreturn]] void bad(const std::string& what, const std::string& why) const {
    fail("task ", task_, ": field '", what, "' ", why);
  }

 private:
  std::string_view task_;
  const Json& r_;
};

// A classification template's strings: the prompt, one verbalization per
// candidate, the gold one as the demonstration, and the SFC prompts.
TaskRender classification(std::string encoded, std::vector<std::string> verbalized, std::vector<int32_t> correct,
                          std::string sfc_encoded, std::vector<std::string> sfc_verbalized) {
  TaskRender r;
  r.objective = Objective::Classification;
  r.encoded = std::move(encoded);
  r.verbalized = std::move(verbalized);
  r.demo = r.verbalized[static_cast<std::size_t>(correct[0])];
  r.correct = std::move(correct);
  r.sfc_encoded = std::move(sfc_encoded);
  r.sfc_verbalized = std::move(sfc_verbalized);
  return r;
}

// Candidates that are the template's prompt followed by a label word; the SFC
// prompt is empty and its candidates are the bare words.
TaskRender verbalizer_task(const std::string& encoded, std::initializer_list<const char*> words, int32_t label) {
  std::vector<std::string> verbalized, bare;
  for (const char* w : words) {
    verbalized.push_back(encoded + w);
    bare.emplace_back(w);
  }
  return classification(encoded, std::move(verbalized), {label}, "", std::move(bare));
}

TaskRender sst2(const Fields& f) {
  const std::string text(py_strip(f.str("sentence")));
  const int32_t label = f.label("label", 2);
  return classification(text + " It was", {text + " It was terrible", text + " It was great"}, {label}, " It was",
                        {" It was terrible", " It was great"});
}

TaskRender rte(const Fields& f) {
  const std::string e = f.str("premise") + "\nDoes this mean that \"" + f.str("hypothesis") + "\" is true? Yes or No?\n";
  return verbalizer_task(e, {"Yes", "No"}, f.label("label", 2));
}

TaskRender cb(const Fields& f) {
  const std::string e =
      "Suppose " + f.str("premise") + " Can we infer that \"" + f.str("hypothesis") + "\"? Yes, No, or Maybe?\n";
  return verbalizer_task(e, {"Yes", "No", "Maybe"}, f.label("label", 3));
}

TaskRender boolq(const Fields& f) {
  std::string question = f.str("question");
  if (question.empty()) f.bad("question", "is empty");
  if (!question.ends_with('?')) question += '?';
  question = data::py_upper_first(question);
  bool yes;
  if (f.has("answer")) {
    const Json& a = f.get("answer");
    if (!a.is_boolean()) f.bad("answer", "must be a boolean, got " + json_excerpt(a));
    yes = a.get<bool>();
  } else {
    yes = f.label("label", 2) == 1;
  }
  const std::string e = f.str("passage") + " " + question + "\n";
  return verbalizer_task(e, {"Yes", "No"}, yes ? 0 : 1);
}

TaskRender wsc(const Fields& f) {
  const std::string e = f.str("text") + "\nIn the previous sentence, does the pronoun \"" +
                        data::py_lower(f.str("span2_text")) + "\" refer to " + f.str("span1_text") +
                        "? Yes or No?\n";
  return verbalizer_task(e, {"No", "Yes"}, f.label("label", 2));
}

TaskRender wic(const Fields& f) {
  const std::string e = "Does the word \"" + f.str("word") + "\" have the same meaning in these two sentences? Yes, No?\n" +
                        f.str("sentence1") + "\n" + f.str("sentence2") + "\n";
  return verbalizer_task(e, {"No", "Yes"}, f.label("label", 2));
}

TaskRender multirc(const Fields& f) {
  const std::string e = f.str("paragraph") + "\nQuestion: " + f.str("question") + "\nI found this answer \"" +
                        f.str("answer") + "\". Is that correct? Yes or No?\n";
  return verbalizer_task(e, {"No", "Yes"}, f.label("label", 2));
}

// MeZO's CopaTemplate with capitalization "correct": the candidate's first
// space-separated word is lower-cased unless it is "I".
std::string copa_candidate(const std::string& c) {
  const auto space = c.find(' ');
  const std::string first = c.substr(0, space);
  const std::string rest = space == std::string::npos ? "" : c.substr(space);
  return (first == "I" ? first : data::py_lower(first)) + rest;
}

TaskRender copa(const Fields& f) {
  std::string premise(py_rstrip(f.str("premise")));
  if (premise.ends_with('.')) premise.pop_back();
  const std::string question = f.str("question");
  const char* conjunction = question == "effect" ? " so " : question == "cause" ? " because " : nullptr;
  if (!conjunction) f.bad("question", "must be \"cause\" or \"effect\", got \"" + question + "\"");
  const std::string prompt = premise + conjunction;
  const std::string sfc(py_strip(conjunction));
  const std::string c1 = copa_candidate(f.str("choice1")), c2 = copa_candidate(f.str("choice2"));
  return classification(prompt, {prompt + c1, prompt + c2}, {f.label("label", 2)}, sfc,
                        {sfc + " " + c1, sfc + " " + c2});
}

// MeZO's default ReCoRD template (ReCoRDTemplateGPT3): highlights become a
// dash list and each candidate is the query with the entity filled in. The
// demonstration fills in the first answer.
TaskRender record(const Fields& f) {
  const std::string passage = data::replace_all(f.str("passage"), "@highlight\n", "- ");
  const std::string query = f.str("query");
  const std::vector<std::string> entities = f.strings(f.get("entities"), "entities");
  const std::vector<std::string> answers = f.strings(f.get("answers"), "answers");
  if (entities.empty()) f.bad("entities", "is empty");
  if (answers.empty()) f.bad("answers", "is empty");
  std::vector<int32_t> correct;
  for (const std::string& a : answers) {
    const auto it = std::find(entities.begin(), entities.end(), a);
    if (it == entities.end()) f.bad("answers", "holds \"" + a + "\", which is not one of the entities");
    const auto k = static_cast<int32_t>(it - entities.begin());
    if (std::find(correct.begin(), correct.end(), k) == correct.end()) correct.push_back(k);
  }
  std::vector<std::string> verbalized, sfc;
  for (const std::string& e : entities) {
    const std::string filled = data::replace_all(query, "@placeholder", e);
    verbalized.push_back(passage + "\n- " + filled);
    sfc.push_back("- " + filled);
  }
  TaskRender r = classification(passage + "\n-", std::move(verbalized), std::move(correct), "-", std::move(sfc));
  r.demo = passage + "\n- " + data::replace_all(query, "@placeholder", answers[0]);
  r.answers = answers;
  return r;
}

std::vector<std::string> all_answers(const Fields& f, const char* outer, const char* inner) {
  const Json& o = f.get(outer);
  const std::string what = std::string(outer) + "." + inner;
  if (!o.is_object() || !o.contains(inner)) f.bad(what, "is missing");
  std::vector<std::string> answers = f.strings(o[inner], what);
  if (answers.empty()) f.bad(what, "is empty");
  return answers;
}

// Generation: the gold verbalization is the prompt, " ", the first answer, "\n".
TaskRender completion(std::string encoded, std::vector<std::string> answers) {
  TaskRender r;
  r.objective = Objective::Completion;
  r.encoded = std::move(encoded);
  r.demo = r.encoded + " " + answers[0] + "\n";
  r.answers = std::move(answers);
  return r;
}

TaskRender squad(const Fields& f) {
  return completion("Title: " + f.str("title") + "\nContext: " + f.str("context") +
                        "\nQuestion: " + std::string(py_strip(f.str("question"))) + "\nAnswer:",
                    all_answers(f, "answers", "text"));
}

TaskRender drop(const Fields& f) {
  return completion("Passage: " + f.str("passage") + "\nQuestion: " + std::string(py_strip(f.str("question"))) +
                        "\nAnswer:",
                    all_answers(f, "answers_spans", "spans"));
}

struct Task {
  std::string_view name;
  TaskRender (*make)(const Fields&);
};
constexpr std::array<Task, 11> kTasks{{{"sst2", sst2},
                                       {"rte", rte},
                                       {"cb", cb},
                                       {"boolq", boolq},
                                       {"wsc", wsc},
                                       {"wic", wic},
                                       {"multirc", multirc},
                                       {"copa", copa},
                                       {"record", record},
                                       {"squad", squad},
                                       {"drop", drop}}};
constexpr std::array<std::string_view, 11> kNames = [] {
  std::array<std::string_view, 11> n{};
  for (std::size_t i = 0; i < kTasks.size(); ++i) n[i] = kTasks[i].name;
  return n;
}();

}  // namespace

std::span<const std::string_view> task_names() { return kNames; }

std::string canonical_task_name(std::string_view name) {
  std::string key;
  for (char c : name) {
    if (c == '-' || c == '_') continue;
    key += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  for (const Task& t : kTasks)
    if (t.name == key) return key;
  return {};
}

TaskRender render_task(std::string_view task, const Json& record) {
  const std::string name = canonical_task_name(task);
  for (const Task& t : kTasks)
    if (t.name == name) return t.make(Fields(t.name, record));
  std::string known;
  for (std::string_view n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
  fail("unknown task '", task, "' (known: ", known, ")");
}

TaskExample split_candidates(std::string_view task, const std::string& encoded,
                             const std::vector<std::string>& verbalized, bool lstrip_prompt) {
  const std::string_view head = strip_spaces(encoded);
  TaskExample ex;
  ex.objective = Objective::Classification;
  ex.prompt = std::string(lstrip_prompt ? py_lstrip(head) : head);
  for (std::size_t k = 0; k < verbalized.size(); ++k) {
    const std::string_view full = strip_spaces(verbalized[k]);
    if (!full.starts_with(head))
      fail("task ", task, ": field 'candidates' gives a text that does not extend the prompt (candidate ", k, ")");
    ex.candidates.emplace_back(full.substr(head.size()));
  }
  return ex;
}

TaskExample apply_task(std::string_view task, const Json& record) { return training_example(task, render_task(task, record)); }

TaskExample training_example(std::string_view task, const TaskRender& r) {
  if (r.objective == Objective::Classification) {
    TaskExample ex = split_candidates(task, r.encoded, r.verbalized);
    ex.correct = r.correct;
    return ex;
  }
  // MeZO's encode_prompt() with the gold answer: prompt = encoded.strip(' ').lstrip(),
  // completion = the rest of verbalize(gold).strip(' ').
  const std::string_view head = strip_spaces(r.encoded);
  const std::string_view full = strip_spaces(r.demo);
  TaskExample ex;
  ex.objective = Objective::Completion;
  ex.prompt = std::string(py_lstrip(head));
  ex.completion = std::string(full.substr(head.size()));
  return ex;
}

}  // namespace zotune
