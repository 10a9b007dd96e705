#include <cctype>

#include "base/error.h"
#include "tokenizer/stages.h"

namespace zotune::tok {

namespace {

// Offsets are all that ByteLevel post-processing changes; ids stay as they are.
class NoOpPost : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

// Special ids before and after the sequence: what TemplateProcessing's
// "single" template, RobertaProcessing and BertProcessing do to one sequence.
class WrapPost : public PostProcessor {
 public:
  WrapPost(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_, after_;
};

class SequencePost : public PostProcessor {
 public:
  explicit SequencePost(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : parts_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

std::unique_ptr<PostProcessor> template_processing(const Json& j, const Where& where) {
  ZOTUNE_TOK_CHECK(j.contains("single") && j["single"].is_array(), where.str(), ": missing array field 'single'");
  ZOTUNE_TOK_CHECK(j.contains("special_tokens") && j["special_tokens"].is_object(), where.str(),
        ": missing object field 'special_tokens'");
  const Json& specials = j["special_tokens"];
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  const Json& single = j["single"];
  for (std::size_t i = 0; i < single.size(); ++i) {
    const Json& piece = single[i];
    const Where w = where.at("single").at(i);
    std::string special;
    if (piece.is_object() && piece.contains("Sequence")) {
      const Json& s = piece["Sequence"];
      ZOTUNE_TOK_CHECK(s.is_object() && s.value("id", std::string()) == "A", w.str(),
            ": a single-sequence template can only hold sequence A, got ", json_excerpt(piece));
      ZOTUNE_TOK_CHECK(!seen_sequence, w.str(), ": sequence A appears twice");
      seen_sequence = true;
      continue;
    }
    if (piece.is_object() && piece.contains("SpecialToken")) {
      const Json& s = piece["SpecialToken"];
      ZOTUNE_TOK_CHECK(s.is_object() && s.contains("id") && s["id"].is_string(), w.str(), ": SpecialToken needs a string 'id'");
      special = s["id"].get<std::string>();
    } else if (piece.is_string()) {  // the "$A" / "[CLS]:0" shorthand
      std::string p = piece.get<std::string>();
      if (!p.empty() && p[0] == '$') {
        ZOTUNE_TOK_CHECK(p == "$" || p.rfind("$A", 0) == 0 || p.rfind("$a", 0) == 0 || std::isdigit(static_cast<unsigned char>(p[1])),
              w.str(), ": a single-sequence template can only hold sequence A, got ", p);
        ZOTUNE_TOK_CHECK(!seen_sequence, w.str(), ": sequence A appears twice");
        seen_sequence = true;
        continue;
      }
      special = p.substr(0, p.rfind(':'));
    } else {
      fail(w.str(), ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, got ", json_excerpt(piece));
    }
    ZOTUNE_TOK_CHECK(specials.contains(special) && specials[special].is_object() && specials[special].contains("ids") &&
              specials[special]["ids"].is_array(),
          where.at("special_tokens").str(), ": no entry with 'ids' for '", special, "' used in 'single'");
    for (const Json& id : specials[special]["ids"]) {
      ZOTUNE_TOK_CHECK(id.is_number_integer(), where.at("special_tokens").at(special).str(), ": ids must be integers");
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  ZOTUNE_TOK_CHECK(seen_sequence, where.at("single").str(), ": the template has no sequence ($A)");
  return std::make_unique<WrapPost>(std::move(before), std::move(after));
}

int32_t pair_id(const Json& j, const char* key, const Where& where) {
  ZOTUNE_TOK_CHECK(j.contains(key) && j[key].is_array() && j[key].size() == 2 && j[key][1].is_number_integer(),
        where.at(key).str(), ": expected [token, id]");
  return j[key][1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_wrap_post_processor(std::vector<int32_t> before, std::vector<int32_t> after) {
  return std::make_unique<WrapPost>(std::move(before), std::move(after));
}

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const Where& where) {
  const std::string type = stage_type(j, where);
  if (type == "ByteLevel") return std::make_unique<NoOpPost>();
  if (type == "TemplateProcessing") return template_processing(j, where);
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return make_wrap_post_processor({pair_id(j, "cls", where)}, {pair_id(j, "sep", where)});
  if (type == "Sequence") {
    ZOTUNE_TOK_CHECK(j.contains("processors") && j["processors"].is_array(), where.str(), ": missing array field 'processors'");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (std::size_t i = 0; i < j["processors"].size(); ++i)
      parts.push_back(make_post_processor(j["processors"][i], where.at("processors").at(i)));
    return std::make_unique<SequencePost>(std::move(parts));
  }
  fail(where.at("type").str(), ": unsupported post-processor type '", type,
       "' (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)");
}

}  // namespace zotune::tok
