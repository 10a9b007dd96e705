#include "data/text.h"

#include <unicode/ucasemap.h>

#include <memory>

#include "base/error.h"
#include "tokenizer/utf8.h"

namespace zotune::data {

bool py_isspace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string_view py_lstrip(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t next = i;
    if (!py_isspace(tok::next_code_point(s, next))) break;
    i = next;
  }
  return s.substr(i);
}

std::string_view py_rstrip(std::string_view s) {
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t start = 0;
    if (!py_isspace(tok::prev_code_point(s, end, start))) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string_view py_strip(std::string_view s) { return py_rstrip(py_lstrip(s)); }

std::string_view strip_spaces(std::string_view s) {
  const auto b = s.find_first_not_of(' ');
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

namespace {

struct CaseMapCloser {
  void operator()(UCaseMap* m) const { ucasemap_close(m); }
};

// ICU's root-locale full case mapping matches Python's str.lower()/upper()
// (SpecialCasing without language tailoring, Final_Sigma included).
template <class Fn>
std::string case_map(std::string_view s, Fn fn, const char* what) {
  if (s.empty()) return {};
  UErrorCode err = U_ZERO_ERROR;
  std::unique_ptr<UCaseMap, CaseMapCloser> map(ucasemap_open("", 0, &err));
  check(U_SUCCESS(err), "case mapping (", what, "): ", u_errorName(err));
  std::string out(s.size() * 3 + 8, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    err = U_ZERO_ERROR;
    const int32_t n = fn(map.get(), out.data(), static_cast<int32_t>(out.size()), s.data(),
                         static_cast<int32_t>(s.size()), &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(static_cast<std::size_t>(n), '\0');
      continue;
    }
    check(U_SUCCESS(err), "case mapping (", what, "): ", u_errorName(err));
    out.resize(static_cast<std::size_t>(n));
    return out;
  }
  fail("case mapping (", what, "): output kept growing");
}

}  // namespace

std::string py_lower(std::string_view s) { return case_map(s, ucasemap_utf8ToLower, "lower"); }

std::string py_upper_first(std::string_view s) {
  if (s.empty()) return {};
  std::size_t n = 0;
  tok::next_code_point(s, n);
  return case_map(s.substr(0, n), ucasemap_utf8ToUpper, "upper") + std::string(s.substr(n));
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace zotune::data
