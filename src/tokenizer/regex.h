// Regular expressions for pre-tokenizers and normalizers: PCRE2 (JIT, UTF, UCP)
// running the Oniguruma patterns found in tokenizer.json files.
#pragma once
#include <cstddef>
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
  // Oniguruma's \s (Unicode White_Space) differs from PCRE2's on U+180E, so \s
  // and \S are rewritten as explicit classes. Exposed for tests.
  static std::string translate(std::string_view oniguruma_pattern);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace zotune::tok
