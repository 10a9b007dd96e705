#include <algorithm>

#include "base/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/stages.h"
#include "tokenizer/utf8.h"

namespace zotune::tok {

namespace {

class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const ByteLevelMap& map = ByteLevelMap::get();
    std::string bytes;
    std::string token_bytes;
    for (const std::string& t : tokens) {
      // A token with any character outside the byte alphabet (e.g. an added
      // token written in plain text) contributes its UTF-8 as is.
      token_bytes.clear();
      bool all_mapped = true;
      for (std::size_t i = 0; i < t.size() && all_mapped;) {
        const char32_t c = next_code_point(t, i);
        const int b = c < 0x144 ? map.code_point_to_byte[c] : -1;
        if (b < 0) all_mapped = false;
        else token_bytes += static_cast<char>(b);
      }
      bytes += all_mapped ? token_bytes : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (std::size_t p = 0; p < t.size();) {
        if (t.compare(p, rep_.size(), rep_) == 0) {
          // HF drops every replacement character of the first token, not just a leading one.
          if (!(i == 0 && strip_first_)) out += ' ';
          p += rep_.size();
        } else {
          out += t[p++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

// "<0xAB>" tokens become bytes; a run of them that is not valid UTF-8 becomes
// one U+FFFD per byte, as in HF.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    int n_pending = 0;
    auto flush = [&] {
      if (n_pending == 0) return;
      if (find_invalid_utf8(pending) == std::string_view::npos) {
        out.push_back(pending);
      } else {
        for (int k = 0; k < n_pending; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      n_pending = 0;
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') byte = parse_hex(t[3], t[4]);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++n_pending;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_hex(char a, char b) {
    const int hi = hex(a), lo = hex(b);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const std::size_t n = content_.size();
    for (std::string& t : tokens) {
      std::size_t b = 0, e = t.size();
      for (std::size_t k = 0; k < start_ && b + n <= e && t.compare(b, n, content_) == 0; ++k) b += n;
      for (std::size_t k = 0; k < stop_ && e >= b + n && t.compare(e - n, n, content_) == 0; ++k) e -= n;
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      std::size_t prev = 0;
      re_->for_each_match(t, [&](std::size_t b, std::size_t e) {
        out.append(t, prev, b - prev);
        out += content_;
        prev = e;
      });
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

std::string one_char(const Json& j, const char* key, const char* def, const Where& where) {
  JsonFields f(j, where.str());
  std::string c = f.opt<std::string>(key, def);
  ZOTUNE_TOK_CHECK(!c.empty() && static_cast<std::size_t>(utf8_len(static_cast<unsigned char>(c[0]))) == c.size(),
        where.at(key).str(), ": must be exactly one character, got '", c, "'");
  return c;
}

}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& where) {
  const std::string type = stage_type(j, where);
  JsonFields f(j, where.str());
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Metaspace") {
    bool strip_first = true;
    if (f.has("prepend_scheme")) strip_first = f.req<std::string>("prepend_scheme") != "never";
    if (f.has("add_prefix_space") && !f.req<bool>("add_prefix_space")) strip_first = false;
    return std::make_unique<MetaspaceDecoder>(one_char(j, "replacement", "\xE2\x96\x81", where), strip_first);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const int64_t start = f.opt<int64_t>("start", 0), stop = f.opt<int64_t>("stop", 0);
    ZOTUNE_TOK_CHECK(start >= 0 && stop >= 0, where.str(), ": start and stop must be >= 0");
    return std::make_unique<StripDecoder>(one_char(j, "content", " ", where), static_cast<std::size_t>(start),
                                          static_cast<std::size_t>(stop));
  }
  if (type == "Replace") {
    ZOTUNE_TOK_CHECK(j.contains("pattern") && j["pattern"].is_object(), where.str(), ": missing object field 'pattern'");
    const Json& p = j["pattern"];
    std::unique_ptr<Regex> re;
    if (p.contains("String") && p["String"].is_string())
      re = std::make_unique<Regex>(Regex::escape(p["String"].get<std::string>()), where.at("pattern.String").str());
    else if (p.contains("Regex") && p["Regex"].is_string())
      re = std::make_unique<Regex>(p["Regex"].get<std::string>(), where.at("pattern.Regex").str());
    else
      fail(where.at("pattern").str(), ": expected {\"String\": ...} or {\"Regex\": ...}, got ", json_excerpt(p));
    return std::make_unique<ReplaceDecoder>(std::move(re), f.req<std::string>("content"));
  }
  if (type == "Sequence") {
    ZOTUNE_TOK_CHECK(j.contains("decoders") && j["decoders"].is_array(), where.str(), ": missing array field 'decoders'");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (std::size_t i = 0; i < j["decoders"].size(); ++i)
      parts.push_back(make_decoder(j["decoders"][i], where.at("decoders").at(i)));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  fail(where.at("type").str(), ": unsupported decoder type '", type,
       "' (supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence)");
}

}  // namespace zotune::tok
