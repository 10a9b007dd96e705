#include "data/metrics.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <map>
#include <vector>

#include "data/text.h"
#include "tokenizer/utf8.h"

namespace zotune {
namespace {

// Python's str.isalnum() for one code point, or '_': the re module's \w.
bool is_word(char32_t c) {
  if (c == U'_') return true;
  const auto ch = static_cast<UChar32>(c);
  switch (u_charType(ch)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER: return true;
    default: break;
  }
  return u_getIntPropertyValue(ch, UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}

bool is_ascii_punctuation(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

std::u32string code_points(std::string_view s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) out.push_back(tok::next_code_point(s, i));
  return out;
}

// re.sub(r'\b(a|an|the)\b', ' ', text), left to right without overlap.
std::u32string remove_articles(const std::u32string& t) {
  std::u32string out;
  const auto word_at = [&](std::size_t i) { return i < t.size() && is_word(t[i]); };
  std::size_t i = 0;
  while (i < t.size()) {
    bool matched = false;
    if (i == 0 || !is_word(t[i - 1])) {
      for (const std::u32string_view w : {U"a", U"an", U"the"}) {  // alternation order
        if (t.compare(i, w.size(), w) == 0 && is_word(t[i]) && !word_at(i + w.size())) {
          out.push_back(U' ');
          i += w.size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out.push_back(t[i++]);
  }
  return out;
}

std::vector<std::string> words(std::string_view normalized) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b < normalized.size()) {
    std::size_t e = normalized.find(' ', b);
    if (e == std::string_view::npos) e = normalized.size();
    if (e > b) out.emplace_back(normalized.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

}  // namespace

std::string normalize_answer(std::string_view s) {
  std::u32string t;
  for (char32_t c : code_points(data::py_lower(s)))
    if (!is_ascii_punctuation(c)) t.push_back(c);
  t = remove_articles(t);
  // ' '.join(text.split())
  std::string out;
  bool pending = false;
  for (char32_t c : t) {
    if (data::py_isspace(c)) {
      pending = !out.empty();
      continue;
    }
    if (pending) out += ' ';
    pending = false;
    tok::append_utf8(out, c);
  }
  return out;
}

double exact_match(std::string_view prediction, std::string_view gold) {
  return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

double token_f1(std::string_view prediction, std::string_view gold) {
  const std::vector<std::string> p = words(normalize_answer(prediction)), g = words(normalize_answer(gold));
  std::map<std::string, int64_t> count;
  for (const std::string& w : g) ++count[w];
  int64_t same = 0;
  for (const std::string& w : p) {
    auto it = count.find(w);
    if (it != count.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(p.size());
  const double recall = static_cast<double>(same) / static_cast<double>(g.size());
  return 2 * precision * recall / (precision + recall);
}

double max_exact_match(std::string_view prediction, std::span<const std::string> golds) {
  double best = 0;
  for (const std::string& g : golds) best = std::max(best, exact_match(prediction, g));
  return best;
}

double max_f1(std::string_view prediction, std::span<const std::string> golds) {
  double best = 0;
  for (const std::string& g : golds) best = std::max(best, token_f1(prediction, g));
  return best;
}

}  // namespace zotune
