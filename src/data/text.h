// Python str semantics that MeZO's prompt templates rely on (strip, lower,
// upper of the first character), so a template gives byte-identical prompts.
// Inputs must be valid UTF-8 (the dataset reader checks each line once).
#pragma once
#include <string>
#include <string_view>

namespace zotune::data {

// Python's str.isspace() for one code point (wider than C isspace: U+0085,
// U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 and
// the separators U+001C..U+001F).
bool py_isspace(char32_t c);

std::string_view py_strip(std::string_view s);   // s.strip()
std::string_view py_lstrip(std::string_view s);  // s.lstrip()
std::string_view py_rstrip(std::string_view s);  // s.rstrip()
std::string_view strip_spaces(std::string_view s);  // s.strip(' ')

std::string py_lower(std::string_view s);  // s.lower(), full Unicode case mapping
// s[0].upper() + s[1:] (first code point, full mapping); "" stays "".
std::string py_upper_first(std::string_view s);

// s.replace(from, to) for every non-overlapping occurrence; `from` non-empty.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

}  // namespace zotune::data
