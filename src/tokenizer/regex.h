// Regular expressions for pre-tokenizers and normalizers: PCRE2 (JIT, UTF, UCP)
// running the Oniguruma patterns found in tokenizer.json files.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/function_ref.h"

namespace zotune::tok {

class Regex {
 public:
  // `where` names the file and field for error messages.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(start, end) for every non-overlapping match, left to right,
  // like Oniguruma's find_iter (empty matches included: they still split).
  // `text` must be valid UTF-8.
  void for_each_match(std::string_view text,
                      FunctionRef<void(std::size_t, std::size_t)> on_match) const;

  static std::string escape(std::string_view literal);
  // Rewrites what Oniguruma's Ruby syntax (HF's regex engine) means
  // differently from PCRE2: \s/\S (Unicode White_Space; PCRE2 adds U+180E),
  // \w/\W (letters, marks, decimal digits, connectors; PCRE2 adds No and Nl),
  // \h/\H (a hex digit in Ruby), and the option (?m) (dot-all in Ruby).
  // ^ and $ match at line breaks in Ruby; the pattern is compiled with
  // PCRE2_MULTILINE for that. Exposed for tests.
  static std::string translate(std::string_view oniguruma_pattern);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zotune::tok
