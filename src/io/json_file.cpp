#include "io/json_file.h"

#include "base/fs.h"

namespace zotune {

std::size_t json_depth_exceeded(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

namespace {
// The longest prefix of s of at most n bytes that does not end inside a UTF-8
// sequence (a cut one made nlohmann's dump() throw "incomplete UTF-8 string").
std::size_t utf8_floor(std::string_view s, std::size_t n) {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

std::string text_excerpt(std::string_view s, std::size_t max_chars) {
  if (s.size() <= max_chars) return std::string(s);
  return std::string(s.substr(0, utf8_floor(s, max_chars))) + "... (" + std::to_string(s.size()) + " bytes)";
}

namespace {
std::string dump_text(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Appends j's JSON text to out until out holds `limit` characters.
void excerpt_into(const Json& j, std::string& out, std::size_t limit) {
  if (out.size() >= limit) return;
  if (j.is_array() || j.is_object()) {
    const bool arr = j.is_array();
    out += arr ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end() && out.size() < limit; ++it) {
      if (!first) out += ", ";
      first = false;
      if (!arr) out += dump_text(Json(it.key())) + ": ";
      excerpt_into(*it, out, limit);
    }
    if (out.size() < limit) out += arr ? ']' : '}';
    return;
  }
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    out += dump_text(Json(s.substr(0, utf8_floor(s, limit - out.size() + 1))));
    return;
  }
  out += dump_text(j);
}
}  // namespace

std::string json_excerpt(const Json& j, std::size_t max_chars) {
  std::string out;
  excerpt_into(j, out, max_chars + 1);  // one more: tells a cut text from one of exactly max_chars
  if (out.size() > max_chars) {
    out.resize(utf8_floor(out, max_chars));
    out += "...";
  }
  return out;
}

Json parse_json(std::string_view text, const std::string& where) {
  const std::string prefix = where.empty() ? "" : where + ": ";
  if (const std::size_t at = json_depth_exceeded(text); at != std::string_view::npos)
    fail(prefix, "JSON nested deeper than ", kMaxJsonDepth, " levels at byte ", at + 1);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail(prefix, "invalid JSON at byte ", e.byte, ": ", text_excerpt(e.what(), 160));
  } catch (const Json::exception& e) {  // e.g. a number beyond double ("1e999")
    fail(prefix, "invalid JSON: ", text_excerpt(e.what(), 160));
  }
}

Json read_json_file(const std::filesystem::path& path) { return parse_json(read_file(path), path.string()); }

}  // namespace zotune
