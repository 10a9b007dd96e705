#include <unicode/uchar.h>

#include <algorithm>

#include "base/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/stages.h"
#include "tokenizer/utf8.h"

namespace zotune::tok {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  std::size_t begin, end;
  bool match;
};

// Applies HF's SplitDelimiterBehavior to a sequence of spans that tile the
// text, then emits the non-empty pieces that are kept.
void emit_split(std::string_view text, bool at_start, std::vector<Span>& spans, Behavior behavior,
                PieceSink out) {
  std::vector<Span> kept;
  kept.reserve(spans.size());
  switch (behavior) {
    case Behavior::Isolated:
      kept = spans;
      break;
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.match) kept.push_back(s);
      break;
    case Behavior::Contiguous: {
      bool prev = false;
      for (const Span& s : spans) {
        if (s.match == prev && !kept.empty()) kept.back().end = s.end;
        else kept.push_back(s);
        prev = s.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev = false;
      for (const Span& s : spans) {
        if (s.match && !prev && !kept.empty()) kept.back().end = s.end;
        else kept.push_back(s);
        prev = s.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev && !kept.empty()) kept.back().begin = it->begin;
        else kept.push_back(*it);
        prev = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Span& s : kept)
    if (s.end > s.begin) out(text.substr(s.begin, s.end - s.begin), at_start && s.begin == 0);
}

// Spans of regex matches and the gaps between them.
void regex_spans(const Regex& re, std::string_view text, bool invert, std::vector<Span>& spans) {
  spans.clear();
  std::size_t prev = 0;
  re.for_each_match(text, [&](std::size_t b, std::size_t e) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  });
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});
}

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer") : nullptr),
        map_(ByteLevelMap::get()) {}

  void split(std::string_view text, bool at_start, PieceSink out) const override {
    std::string prefixed;
    if (add_prefix_space_ && text[0] != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed += ' ';
      prefixed += text;
      text = prefixed;
    }
    std::string mapped;
    auto emit = [&](std::size_t b, std::size_t e) {
      if (e <= b) return;
      mapped.clear();
      for (std::size_t i = b; i < e; ++i) mapped += map_.byte_to_utf8[static_cast<unsigned char>(text[i])];
      out(mapped, at_start && b == 0);
    };
    if (!regex_) {
      emit(0, text.size());
      return;
    }
    std::size_t prev = 0;
    regex_->for_each_match(text, [&](std::size_t b, std::size_t e) {
      emit(prev, b);
      emit(b, e);
      prev = e;
    });
    emit(prev, text.size());
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
  const ByteLevelMap& map_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(std::unique_ptr<Regex> re, Behavior b, bool invert)
      : re_(std::move(re)), behavior_(b), invert_(invert) {}
  void split(std::string_view text, bool at_start, PieceSink out) const override {
    std::vector<Span> spans;
    regex_spans(*re_, text, invert_, spans);
    emit_split(text, at_start, spans, behavior_, out);
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

enum class PrependScheme { First, Never, Always };

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string rep, PrependScheme scheme, bool split)
      : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void split(std::string_view text, bool at_start, PieceSink out) const override {
    std::string s;
    s.reserve(text.size() + rep_.size() * 4);
    for (char c : text) {
      if (c == ' ') s += rep_;
      else s += c;
    }
    if ((scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && at_start)) &&
        s.compare(0, rep_.size(), rep_) != 0)
      s.insert(0, rep_);
    if (!split_) {
      out(s, at_start);
      return;
    }
    std::vector<Span> spans;
    std::size_t prev = 0;
    for (std::size_t pos = s.find(rep_); pos != std::string::npos; pos = s.find(rep_, pos + rep_.size())) {
      if (pos > prev) spans.push_back({prev, pos, false});
      spans.push_back({pos, pos + rep_.size(), true});
      prev = pos + rep_.size();
    }
    if (prev < s.size()) spans.push_back({prev, s.size(), false});
    emit_split(s, at_start, spans, Behavior::MergedWithNext, out);
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void split(std::string_view text, bool at_start, PieceSink out) const override {
    std::vector<Span> spans;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t b = i;
      const char32_t c = next_code_point(text, i);
      const bool digit = (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
      // HF's char-predicate pattern: each digit is a match, runs of other characters one gap.
      if (!digit && !spans.empty() && !spans.back().match) spans.back().end = i;
      else spans.push_back({b, i, digit});
    }
    emit_split(text, at_start, spans, individual_ ? Behavior::Isolated : Behavior::Contiguous, out);
  }

 private:
  bool individual_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(std::string_view text, bool at_start, PieceSink out) const override {
    run(0, text, at_start, out);
  }

 private:
  void run(std::size_t stage, std::string_view text, bool at_start, PieceSink out) const {
    if (stage == parts_.size()) {
      out(text, at_start);
      return;
    }
    parts_[stage]->split(text, at_start,
                         [&](std::string_view piece, bool start) { run(stage + 1, piece, start, out); });
  }
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Behavior parse_behavior(const std::string& s, const Where& where) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail(where.str(), ": unknown split behavior '", s, "'");
}

std::unique_ptr<Regex> pattern_regex(const Json& j, const Where& where) {
  ZOTUNE_TOK_CHECK(j.contains("pattern") && j["pattern"].is_object(), where.str(), ": missing object field 'pattern'");
  const Json& p = j["pattern"];
  if (p.contains("String") && p["String"].is_string())
    return std::make_unique<Regex>(Regex::escape(p["String"].get<std::string>()), where.at("pattern.String").str());
  if (p.contains("Regex") && p["Regex"].is_string())
    return std::make_unique<Regex>(p["Regex"].get<std::string>(), where.at("pattern.Regex").str());
  fail(where.at("pattern").str(), ": expected {\"String\": ...} or {\"Regex\": ...}, got ", json_excerpt(p));
}

// Metaspace's prepend scheme; the older add_prefix_space flag maps onto it.
PrependScheme parse_prepend_scheme(const Json& j, const Where& where) {
  JsonFields f(j, where.str());
  PrependScheme scheme = PrependScheme::Always;
  if (f.has("prepend_scheme")) {
    const std::string s = f.req<std::string>("prepend_scheme");
    if (s == "first") scheme = PrependScheme::First;
    else if (s == "never") scheme = PrependScheme::Never;
    else if (s == "always") scheme = PrependScheme::Always;
    else fail(where.at("prepend_scheme").str(), ": unknown value '", s, "' (first, never or always)");
  }
  if (f.has("add_prefix_space") && !f.req<bool>("add_prefix_space")) scheme = PrependScheme::Never;
  return scheme;
}

std::string replacement_char(const Json& j, const Where& where) {
  JsonFields f(j, where.str());
  std::string rep = f.opt<std::string>("replacement", "\xE2\x96\x81");
  ZOTUNE_TOK_CHECK(!rep.empty() && static_cast<std::size_t>(utf8_len(static_cast<unsigned char>(rep[0]))) == rep.size(),
        where.at("replacement").str(), ": must be exactly one character, got '", rep, "'");
  return rep;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPre>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& where) {
  const std::string type = stage_type(j, where);
  JsonFields f(j, where.str());
  if (type == "ByteLevel")
    return make_byte_level_pre_tokenizer(f.opt<bool>("add_prefix_space", true), f.opt<bool>("use_regex", true));
  if (type == "Split")
    return std::make_unique<SplitPre>(pattern_regex(j, where),
                                      parse_behavior(f.req<std::string>("behavior"), where.at("behavior")),
                                      f.opt<bool>("invert", false));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePre>(replacement_char(j, where), parse_prepend_scheme(j, where),
                                          f.opt<bool>("split", true));
  if (type == "Digits") return std::make_unique<DigitsPre>(f.opt<bool>("individual_digits", false));
  if (type == "Sequence") {
    ZOTUNE_TOK_CHECK(j.contains("pretokenizers") && j["pretokenizers"].is_array(), where.str(),
          ": missing array field 'pretokenizers'");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (std::size_t i = 0; i < j["pretokenizers"].size(); ++i)
      parts.push_back(make_pre_tokenizer(j["pretokenizers"][i], where.at("pretokenizers").at(i)));
    return std::make_unique<SequencePre>(std::move(parts));
  }
  fail(where.at("type").str(), ": unsupported pre-tokenizer type '", type,
       "' (supported: ByteLevel, Split, Metaspace, Digits, Sequence)");
}

}  // namespace zotune::tok
