#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/ucasemap.h>

#include "base/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/stages.h"
#include "tokenizer/utf8.h"

namespace zotune::tok {

std::string stage_type(const Json& j, const Where& where) {
  ZOTUNE_TOK_CHECK(j.is_object(), where.str(), ": expected an object, got ", json_excerpt(j));
  ZOTUNE_TOK_CHECK(j.contains("type") && j["type"].is_string(), where.str(), ": missing string field 'type'");
  return j["type"].get<std::string>();
}

namespace {

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

class UnicodeNormalizer : public Normalizer {
 public:
  UnicodeNormalizer(const std::string& form, const Where& where) {
    UErrorCode st = U_ZERO_ERROR;
    if (form == "NFC") norm_ = icu::Normalizer2::getNFCInstance(st);
    else if (form == "NFD") norm_ = icu::Normalizer2::getNFDInstance(st);
    else if (form == "NFKC") norm_ = icu::Normalizer2::getNFKCInstance(st);
    else norm_ = icu::Normalizer2::getNFKDInstance(st);
    ZOTUNE_TOK_CHECK(U_SUCCESS(st), where.str(), ": ICU has no ", form, " data: ", u_errorName(st));
  }
  void normalize(std::string& s) const override {
    if (is_ascii(s)) return;  // ASCII is invariant under all four forms
    UErrorCode st = U_ZERO_ERROR;
    if (norm_->isNormalizedUTF8(s, st) && U_SUCCESS(st)) return;
    std::string out;
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(s.size()));
    st = U_ZERO_ERROR;
    norm_->normalizeUTF8(0, s, sink, nullptr, st);
    ZOTUNE_TOK_CHECK(U_SUCCESS(st), "Unicode normalization failed: ", u_errorName(st));
    s = std::move(out);
  }

 private:
  const icu::Normalizer2* norm_ = nullptr;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    if (is_ascii(s)) {
      for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      return;
    }
    UErrorCode st = U_ZERO_ERROR;
    UCaseMap* map = ucasemap_open("", 0, &st);
    std::string out(s.size() * 3 + 4, '\0');
    const int32_t n = ucasemap_utf8ToLower(map, out.data(), static_cast<int32_t>(out.size()), s.data(),
                                           static_cast<int32_t>(s.size()), &st);
    ucasemap_close(map);
    ZOTUNE_TOK_CHECK(U_SUCCESS(st), "lowercasing failed: ", u_errorName(st));
    out.resize(static_cast<std::size_t>(n));
    s = std::move(out);
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prefix_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(const Json& j, const Where& where) {
    JsonFields f(j, where.str());
    content_ = f.req<std::string>("content");
    ZOTUNE_TOK_CHECK(j.contains("pattern") && j["pattern"].is_object(), where.str(), ": missing object field 'pattern'");
    const Json& p = j["pattern"];
    if (p.contains("String") && p["String"].is_string() && !p["String"].get<std::string>().empty()) {
      literal_ = p["String"].get<std::string>();
    } else if (p.contains("String") && p["String"].is_string()) {
      regex_ = std::make_unique<Regex>("", where.at("pattern.String").str());
    } else if (p.contains("Regex") && p["Regex"].is_string()) {
      regex_ = std::make_unique<Regex>(p["Regex"].get<std::string>(), where.at("pattern.Regex").str());
    } else {
      fail(where.at("pattern").str(), ": expected {\"String\": ...} or {\"Regex\": ...}, got ", json_excerpt(p));
    }
  }
  void normalize(std::string& s) const override {
    std::string out;
    std::size_t prev = 0;
    if (regex_) {
      regex_->for_each_match(s, [&](std::size_t b, std::size_t e) {
        out.append(s, prev, b - prev);
        out += content_;
        prev = e;
      });
    } else {
      std::size_t b = s.find(literal_);
      if (b == std::string::npos) return;
      for (; b != std::string::npos; b = s.find(literal_, prev)) {
        out.append(s, prev, b - prev);
        out += content_;
        prev = b + literal_.size();
      }
    }
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    std::size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        std::size_t n = b;
        if (!is_unicode_whitespace(next_code_point(s, n))) break;
        b = n;
      }
    }
    if (right_) {
      while (e > b) {
        std::size_t start;
        if (!is_unicode_whitespace(prev_code_point(s, e, start))) break;
        e = start;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& where) {
  const std::string type = stage_type(j, where);
  JsonFields f(j, where.str());
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(type, where);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(f.req<std::string>("prepend"));
  if (type == "Replace") return std::make_unique<Replace>(j, where);
  if (type == "Strip") return std::make_unique<Strip>(f.opt<bool>("strip_left", true), f.opt<bool>("strip_right", true));
  if (type == "Sequence") {
    ZOTUNE_TOK_CHECK(j.contains("normalizers") && j["normalizers"].is_array(), where.str(),
          ": missing array field 'normalizers'");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (std::size_t i = 0; i < j["normalizers"].size(); ++i)
      parts.push_back(make_normalizer(j["normalizers"][i], where.at("normalizers").at(i)));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  fail(where.at("type").str(), ": unsupported normalizer type '", type,
       "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)");
}

}  // namespace zotune::tok
