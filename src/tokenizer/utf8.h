// UTF-8 helpers shared by the tokenizer stages. Inputs to the *_valid
// functions must already be valid UTF-8 (encode() checks once at the top).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zotune::tok {

inline int utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Decodes the code point at s[i] and advances i; s must be valid UTF-8.
char32_t next_code_point(std::string_view s, std::size_t& i);
// Decodes the code point that ends at s[end-1]; returns its start in `start`.
char32_t prev_code_point(std::string_view s, std::size_t end, std::size_t& start);
void append_utf8(std::string& out, char32_t c);

// Byte offset of the first byte that is not part of valid UTF-8, or npos.
std::size_t find_invalid_utf8(std::string_view s);

// Like Rust's String::from_utf8_lossy: every maximal invalid subsequence
// becomes one U+FFFD (the Unicode "maximal subpart" rule).
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space, as Rust's char::is_whitespace and regex \s.
bool is_unicode_whitespace(char32_t c);
// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
bool is_word_char(char32_t c);

// GPT-2's reversible byte <-> printable code point mapping used by ByteLevel.
struct ByteLevelMap {
  std::string byte_to_utf8[256];  // UTF-8 of the code point standing for each byte
  int16_t code_point_to_byte[0x144];  // -1 where the code point stands for no byte
  static const ByteLevelMap& get();
};

}  // namespace zotune::tok
