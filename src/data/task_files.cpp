#include "data/task_files.h"

#include <algorithm>
#include <functional>
#include <set>

#include "base/error.h"
#include "base/fs.h"
#include "data/eval_protocol.h"
#include "data/text.h"
#include "io/json_file.h"
#include "tokenizer/utf8.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;

// Collects rendered records with their origin; errors from a record name it.
class SplitBuilder {
 public:
  SplitBuilder(std::string_view task, std::string file) : task_(task) { out_.file = std::move(file); }
  void add(const Json& record, const std::string& origin) {
    try {
      out_.examples.push_back(render_task(task_, record));
    } catch (const Error& e) {
      fail(origin, ": ", e.what());
    }
    out_.origin.push_back(origin);
  }
  TaskSplit finish() {
    if (out_.examples.empty()) fail(out_.file, ": no examples");
    return std::move(out_);
  }
  TaskSplit& split() { return out_; }

 private:
  std::string task_;
  TaskSplit out_;
};

[[noreturn]] void bad_field(const std::string& field, const std::string& why) { fail("field '", field, "' ", why); }

const Json& member(const Json& j, const std::string& path, const char* key) {
  if (!j.is_object()) bad_field(path, "must be a JSON object");
  if (!j.contains(key) || j[key].is_null()) bad_field(path.empty() ? key : path + "." + key, "is missing");
  return j[key];
}

std::string string_at(const Json& j, const std::string& path, const char* key) {
  const Json& v = member(j, path, key);
  if (!v.is_string()) bad_field(path.empty() ? key : path + "." + key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

const Json& array_at(const Json& j, const std::string& path, const char* key) {
  const Json& v = member(j, path, key);
  if (!v.is_array()) bad_field(path.empty() ? key : path + "." + key, "must be an array");
  return v;
}

// A label given as a string (SuperGLUE RTE, CB) becomes its class index.
void map_string_label(Json& r, std::initializer_list<const char*> names) {
  if (!r.contains("label") || !r["label"].is_string()) return;
  const std::string s = r["label"].get<std::string>();
  int k = 0;
  for (const char* n : names) {
    if (s == n) {
      r["label"] = k;
      return;
    }
    ++k;
  }
  std::string known;
  for (const char* n : names) known += (known.empty() ? "" : ", ") + std::string(n);
  bad_field("label", "= \"" + s + "\" is not one of " + known);
}

// A boolean label (SuperGLUE WiC, WSC) becomes 0/1.
void map_bool_label(Json& r) {
  if (r.contains("label") && r["label"].is_boolean()) r["label"] = r["label"].get<bool>() ? 1 : 0;
}

// Python's text[start:end + 1] in code points (ReCoRD's entity spans).
std::string code_point_slice(const std::string& text, const std::vector<std::size_t>& offsets, int64_t start,
                             int64_t end, const std::string& field) {
  const auto n = static_cast<int64_t>(offsets.size()) - 1;
  if (start < 0 || end < start || end >= n)
    bad_field(field, "= [" + std::to_string(start) + ", " + std::to_string(end) + "] is outside the passage (" +
                         std::to_string(n) + " characters)");
  return text.substr(offsets[static_cast<std::size_t>(start)],
                     offsets[static_cast<std::size_t>(end + 1)] - offsets[static_cast<std::size_t>(start)]);
}

int64_t int_at(const Json& j, const std::string& path, const char* key) {
  const Json& v = member(j, path, key);
  if (!v.is_number_integer()) bad_field(path + "." + key, "must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

// SuperGLUE's ReCoRD line: one passage with its entity spans and its queries.
void expand_record(const Json& line, const std::string& origin, SplitBuilder& b) {
  const Json& passage = member(line, "", "passage");
  const std::string text = string_at(passage, "passage", "text");
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < text.size();) {
    offsets.push_back(i);
    tok::next_code_point(text, i);
  }
  offsets.push_back(text.size());
  std::set<std::string> entities;
  const Json& spans = array_at(passage, "passage", "entities");
  for (std::size_t k = 0; k < spans.size(); ++k) {
    const std::string path = "passage.entities[" + std::to_string(k) + "]";
    entities.insert(code_point_slice(text, offsets, int_at(spans[k], path, "start"), int_at(spans[k], path, "end"),
                                     path));
  }
  const Json& qas = array_at(line, "", "qas");
  for (std::size_t q = 0; q < qas.size(); ++q) {
    const std::string path = "qas[" + std::to_string(q) + "]";
    std::set<std::string> answers;
    const Json& a = array_at(qas[q], path, "answers");
    for (std::size_t k = 0; k < a.size(); ++k)
      answers.insert(string_at(a[k], path + ".answers[" + std::to_string(k) + "]", "text"));
    Json r = {{"passage", text},
              {"query", string_at(qas[q], path, "query")},
              {"entities", std::vector<std::string>(entities.begin(), entities.end())},
              {"answers", std::vector<std::string>(answers.begin(), answers.end())}};
    b.add(r, origin + " " + path);
  }
}

// SuperGLUE's MultiRC line: one passage, its questions, their answers.
void expand_multirc(const Json& line, const std::string& origin, SplitBuilder& b) {
  const Json& passage = member(line, "", "passage");
  const std::string text = string_at(passage, "passage", "text");
  const Json& questions = array_at(passage, "passage", "questions");
  for (std::size_t q = 0; q < questions.size(); ++q) {
    const std::string qpath = "passage.questions[" + std::to_string(q) + "]";
    const std::string question = string_at(questions[q], qpath, "question");
    const Json& answers = array_at(questions[q], qpath, "answers");
    for (std::size_t k = 0; k < answers.size(); ++k) {
      const std::string apath = qpath + ".answers[" + std::to_string(k) + "]";
      Json r = {{"paragraph", text},
                {"question", question},
                {"answer", string_at(answers[k], apath, "text")},
                {"label", member(answers[k], apath, "label")}};
      map_bool_label(r);
      b.add(r, origin + " " + apath);
    }
  }
}

// One JSON line in either the Hugging Face or the SuperGLUE shape.
void add_jsonl_record(const std::string& task, Json r, const std::string& origin, SplitBuilder& b) {
  if (!r.is_object()) fail("the line is not a JSON object");
  if (task == "multirc" && r.contains("passage") && r["passage"].is_object()) return expand_multirc(r, origin, b);
  if (task == "record" && r.contains("passage") && r["passage"].is_object()) return expand_record(r, origin, b);
  if (task == "rte") map_string_label(r, {"entailment", "not_entailment"});
  if (task == "cb") map_string_label(r, {"entailment", "contradiction", "neutral"});
  if (task == "wic" || task == "wsc") map_bool_label(r);
  if (task == "boolq" && !r.contains("answer") && r.contains("label") && r["label"].is_boolean()) {
    r["answer"] = r["label"];
    r.erase("label");
  }
  if (task == "wsc" && r.contains("target") && r["target"].is_object()) {
    r["span1_text"] = string_at(r["target"], "target", "span1_text");
    r["span2_text"] = string_at(r["target"], "target", "span2_text");
  }
  b.add(r, origin);
}

// Runs fn; an error that does not already start with `prefix` gets "prefix: ".
void with_prefix(const std::string& prefix, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.starts_with(prefix)) throw;
    fail(prefix, ": ", msg);
  }
}

// Calls fn(line, line_no) for every non-blank line; errors get "file:line: ".
void for_each_line(const std::string& text, const std::string& file,
                   const std::function<void(std::string_view, int64_t)>& fn) {
  std::string_view contents = text;
  if (contents.starts_with("\xEF\xBB\xBF")) contents.remove_prefix(3);
  int64_t line_no = 0;
  for (std::size_t pos = 0; pos < contents.size();) {
    std::size_t end = contents.find('\n', pos);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.find_first_not_of(" \t\f\v") == std::string_view::npos) continue;
    with_prefix(file + ":" + std::to_string(line_no), [&] {
      const auto bad = tok::find_invalid_utf8(line);
      if (bad != std::string_view::npos) fail("invalid UTF-8 at byte ", bad + 1, " of the line");
      fn(line, line_no);
    });
  }
}

Json parse_line(std::string_view line) {
  try {
    return Json::parse(line);
  } catch (const Json::exception& e) {
    fail("invalid JSON: ", e.what());
  }
}

TaskSplit read_jsonl(const std::string& task, const fs::path& file) {
  SplitBuilder b(task, file.string());
  for_each_line(read_file(file), file.string(), [&](std::string_view line, int64_t line_no) {
    Json j = parse_line(line);
    add_jsonl_record(task, std::move(j), file.string() + ":" + std::to_string(line_no), b);
  });
  return b.finish();
}

// GLUE SST-2: a header naming the columns, then sentence<TAB>label rows.
TaskSplit read_sst2_tsv(const std::string& task, const fs::path& file) {
  SplitBuilder b(task, file.string());
  std::size_t sentence_col = 0, label_col = 0, columns = 0;
  bool header = false;
  for_each_line(read_file(file), file.string(), [&](std::string_view line, int64_t) {
    std::vector<std::string> cells;
    for (std::size_t pos = 0;;) {
      const std::size_t tab = line.find('\t', pos);
      cells.emplace_back(line.substr(pos, tab == std::string_view::npos ? std::string_view::npos : tab - pos));
      if (tab == std::string_view::npos) break;
      pos = tab + 1;
    }
    if (!header) {
      const auto find = [&](const char* name) {
        const auto it = std::find(cells.begin(), cells.end(), name);
        if (it == cells.end()) fail("the header has no column '", name, "' (GLUE SST-2: sentence<TAB>label)");
        return static_cast<std::size_t>(it - cells.begin());
      };
      sentence_col = find("sentence");
      label_col = find("label");
      columns = cells.size();
      header = true;
      return;
    }
    if (cells.size() != columns) fail("the row has ", cells.size(), " columns, the header ", columns);
    const std::string& label = cells[label_col];
    if (label != "0" && label != "1") bad_field("label", "must be 0 or 1, got \"" + label + "\"");
    const Json r = {{"sentence", cells[sentence_col]}, {"label", label == "1" ? 1 : 0}};
    b.add(r, file.string() + ":" + std::to_string(b.split().examples.size() + 2));
  });
  return b.finish();
}

// SQuAD v1.1: data[].paragraphs[].qas[], every answer's text a gold answer.
TaskSplit read_squad_json(const std::string& task, const fs::path& file) {
  const Json root = read_json_file(file);
  const std::string name = file.string();
  SplitBuilder b(task, name);
  with_prefix(name, [&] {
    const Json& data = array_at(root, "", "data");
    for (std::size_t a = 0; a < data.size(); ++a) {
      const std::string apath = "data[" + std::to_string(a) + "]";
      const std::string title = data[a].is_object() && data[a].contains("title") ? string_at(data[a], apath, "title") : "";
      const Json& paragraphs = array_at(data[a], apath, "paragraphs");
      for (std::size_t p = 0; p < paragraphs.size(); ++p) {
        const std::string ppath = apath + ".paragraphs[" + std::to_string(p) + "]";
        const std::string context = string_at(paragraphs[p], ppath, "context");
        const Json& qas = array_at(paragraphs[p], ppath, "qas");
        for (std::size_t q = 0; q < qas.size(); ++q) {
          const std::string qpath = ppath + ".qas[" + std::to_string(q) + "]";
          std::vector<std::string> answers;
          const Json& as = array_at(qas[q], qpath, "answers");
          for (std::size_t k = 0; k < as.size(); ++k)
            answers.push_back(string_at(as[k], qpath + ".answers[" + std::to_string(k) + "]", "text"));
          const Json r = {{"title", title},
                          {"context", context},
                          {"question", string_at(qas[q], qpath, "question")},
                          {"answers", {{"text", answers}}}};
          b.add(r, name + ": " + qpath);
        }
      }
    }
  });
  return b.finish();
}

// DROP's answer object: a number, else a date, else the spans (the Hugging
// Face loader's rule). Returns false for an answer that gives none or mixes them.
bool drop_answer(const Json& a, const std::string& path, std::vector<std::string>& out) {
  const std::string number = string_at(a, path, "number");
  const Json& date = member(a, path, "date");
  std::string d;
  bool has_date = false;
  for (const char* part : {"day", "month", "year"}) {
    const std::string v = date.is_object() && date.contains(part) ? string_at(date, path + ".date", part) : "";
    has_date = has_date || !v.empty();
    d += (part[0] == 'd' ? "" : " ") + v;
  }
  const Json& spans = array_at(a, path, "spans");
  if (!number.empty()) {
    if (has_date || !spans.empty()) return false;
    out.push_back(number);
  } else if (has_date) {
    if (!spans.empty()) return false;
    out.emplace_back(data::py_strip(d));
  }
  for (std::size_t k = 0; k < spans.size(); ++k) {
    if (!spans[k].is_string()) bad_field(path + ".spans[" + std::to_string(k) + "]", "must be a string");
    out.push_back(spans[k].get<std::string>());
  }
  return true;
}

// DROP: {passage_id: {passage, qa_pairs: [{question, answer, validated_answers}]}}.
TaskSplit read_drop_json(const std::string& task, const fs::path& file, bool train) {
  // Passages in file order (the Hugging Face loader's order, which the ids index).
  nlohmann::ordered_json root;
  const std::string name = file.string();
  try {
    root = nlohmann::ordered_json::parse(read_file(file));
  } catch (const nlohmann::ordered_json::parse_error& e) {
    fail(name, ": invalid JSON at byte ", e.byte, ": ", e.what());
  }
  SplitBuilder b(task, name);
  with_prefix(name, [&] {
    if (!root.is_object()) fail("the file must hold a JSON object of passages");
    for (const auto& item : root.items()) {
      const std::string spath = item.key();
      const Json section(item.value());
      const std::string passage = string_at(section, spath, "passage");
      const Json& qa = array_at(section, spath, "qa_pairs");
      for (std::size_t q = 0; q < qa.size(); ++q) {
        const std::string qpath = spath + ".qa_pairs[" + std::to_string(q) + "]";
        std::vector<std::string> answers;
        bool ok = true;
        if (train) {
          ok = drop_answer(member(qa[q], qpath, "answer"), qpath + ".answer", answers);
        } else {
          const Json& v = array_at(qa[q], qpath, "validated_answers");
          for (std::size_t k = 0; k < v.size() && ok; ++k)
            ok = drop_answer(v[k], qpath + ".validated_answers[" + std::to_string(k) + "]", answers);
        }
        if (!ok || answers.empty()) {
          ++b.split().skipped;
          continue;
        }
        const Json r = {{"passage", passage},
                        {"question", string_at(qa[q], qpath, "question")},
                        {"answers_spans", {{"spans", answers}}}};
        b.add(r, name + ": " + qpath);
      }
    }
  });
  return b.finish();
}

std::string known_task(std::string_view task) {
  const std::string name = canonical_task_name(task);
  if (name.empty()) render_task(task, Json::object());  // throws, listing the known tasks
  return name;
}

}  // namespace

std::vector<std::string> split_file_names(std::string_view task, SplitKind split) {
  const std::string name = known_task(task);
  const bool train = split == SplitKind::Train;
  std::vector<std::string> names;
  if (name == "sst2") names.emplace_back(train ? "train.tsv" : "dev.tsv");
  if (name == "squad") names.emplace_back(train ? "train-v1.1.json" : "dev-v1.1.json");
  if (name == "drop") names.emplace_back(train ? "drop_dataset_train.json" : "drop_dataset_dev.json");
  if (train) {
    names.emplace_back("train.jsonl");
  } else {
    for (const char* n : {"validation.jsonl", "val.jsonl", "dev.jsonl"}) names.emplace_back(n);
  }
  return names;
}

TaskSplit read_task_file(std::string_view task, const fs::path& file, bool train) {
  const std::string name = known_task(task);
  const std::string ext = file.extension().string();
  if (ext == ".jsonl") return read_jsonl(name, file);
  if (ext == ".tsv") {
    if (name != "sst2") fail(file.string(), ": TSV files are read for sst2 only (GLUE SST-2)");
    return read_sst2_tsv(name, file);
  }
  if (ext == ".json") {
    if (name == "squad") return read_squad_json(name, file);
    if (name == "drop") return read_drop_json(name, file, train);
    fail(file.string(), ": JSON files are read for squad (SQuAD v1.1) and drop (DROP) only");
  }
  fail(file.string(), ": unknown file type '", ext, "' (.jsonl, .tsv, .json)");
}

TaskSplit read_task_split(std::string_view task, const fs::path& dir, SplitKind split) {
  const std::vector<std::string> names = split_file_names(task, split);
  for (const std::string& n : names)
    if (fs::exists(dir / n)) return read_task_file(task, dir / n, split == SplitKind::Train);
  std::string tried;
  for (const std::string& n : names) tried += (tried.empty() ? "" : ", ") + n;
  fail(dir.string(), ": no ", split == SplitKind::Train ? "train" : "validation", " split for task ",
       canonical_task_name(task), " (looked for ", tried, ")");
}


std::vector<EvalExample> read_plain_eval_file(const std::filesystem::path& file) {
  std::vector<EvalExample> out;
  for_each_line(read_file(file), file.string(), [&](std::string_view line, int64_t line_no) {
    Json j = parse_line(line);
    if (!j.is_object()) fail("the line is not a JSON object");
    EvalExample e;
    e.id = static_cast<int64_t>(out.size());
    e.origin = file.string() + ":" + std::to_string(line_no);
    e.ex.prompt = string_at(j, "", "prompt");
    if (j.contains("candidates")) {
      e.ex.objective = Objective::Classification;
      const Json& c = array_at(j, "", "candidates");
      if (c.empty()) bad_field("candidates", "is empty");
      for (std::size_t k = 0; k < c.size(); ++k) {
        if (!c[k].is_string()) bad_field("candidates[" + std::to_string(k) + "]", "must be a string");
        e.ex.candidates.push_back(c[k].get<std::string>());
      }
      const Json& l = member(j, "", "label");
      std::vector<Json> labels = l.is_array() ? std::vector<Json>(l.begin(), l.end()) : std::vector<Json>{l};
      if (labels.empty()) bad_field("label", "is empty");
      for (const Json& v : labels) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= static_cast<int64_t>(c.size()))
          bad_field("label", "must be a candidate index in [0, " + std::to_string(c.size()) + "), got " + v.dump());
        e.ex.correct.push_back(v.get<int32_t>());
      }
    } else if (j.contains("completion")) {
      e.ex.objective = Objective::Completion;
      if (j.contains("answers")) {
        const Json& a = array_at(j, "", "answers");
        for (std::size_t k = 0; k < a.size(); ++k) {
          if (!a[k].is_string()) bad_field("answers[" + std::to_string(k) + "]", "must be a string");
          e.answers.push_back(a[k].get<std::string>());
        }
        if (e.answers.empty()) bad_field("answers", "is empty");
      } else {
        e.answers.emplace_back(data::py_strip(string_at(j, "", "completion")));
      }
    } else {
      fail("the line has neither 'candidates' (classification) nor 'completion' (generation)");
    }
    if (!out.empty() && out.front().ex.objective != e.ex.objective)
      fail("the line's shape differs from line ", out.front().origin, "'s (all lines must have one shape)");
    out.push_back(std::move(e));
  });
  if (out.empty()) fail(file.string(), ": no examples");
  return out;
}

namespace {
std::string own_shape_jsonl(std::string_view task, const TaskSplit& split, const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) {
    const auto i = static_cast<std::size_t>(id);
    const TaskExample ex = training_example(task, split.examples[i]);
    Json j = {{"prompt", ex.prompt}};
    if (ex.objective == Objective::Classification) {
      j["candidates"] = ex.candidates;
      j["label"] = ex.correct;
    } else {
      j["completion"] = ex.completion;
    }
    out += j.dump() + "\n";
  }
  return out;
}
}  // namespace

MezoTaskData mezo_task_data(std::string_view task, const std::filesystem::path& dir, int64_t num_train,
                            int64_t num_dev, int64_t num_test, uint32_t seed) {
  const TaskSplit train = read_task_split(task, dir, SplitKind::Train);
  const TaskSplit valid = read_task_split(task, dir, SplitKind::Validation);
  const MezoSample s = mezo_sample(static_cast<int64_t>(train.examples.size()),
                                   static_cast<int64_t>(valid.examples.size()), num_train, num_dev, num_test, seed);
  if (s.train.empty()) fail(train.file, ": no training examples left after the dev set of ", num_dev);
  if (s.dev.empty()) fail(train.file, ": the dev set is empty (--num-dev)");
  MezoTaskData d;
  d.train_file = train.file;
  d.validation_file = valid.file;
  d.train_ids = s.train;
  d.dev_ids = s.dev;
  d.test_ids = s.test;
  d.train_jsonl = own_shape_jsonl(task, train, s.train);
  d.dev_jsonl = own_shape_jsonl(task, train, s.dev);
  const auto zero_shot = [&](const TaskSplit& split, const std::vector<int64_t>& ids, std::vector<EvalExample>& out) {
    for (int64_t id : ids) {
      const auto i = static_cast<std::size_t>(id);
      EvalExample e = make_eval_example(task, split.examples[i], {}, Calibration::None);
      e.id = id;
      e.origin = split.origin[i];
      out.push_back(std::move(e));
    }
  };
  zero_shot(valid, s.test, d.test);
  zero_shot(train, s.dev, d.dev);
  return d;
}

}  // namespace zotune
