// JSON files with errors that name the file and the field.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace zotune {

using Json = nlohmann::json;

// Every JSON input (config.json, tokenizer.json, JSONL lines, update logs,
// trainer_state.json, safetensors headers) is parsed with a bounded nesting
// depth: deeper input is an error, never a stack overflow in code that walks it.
inline constexpr int kMaxJsonDepth = 128;

// Parses `text`; `where` (a file, or "file:line") starts every error. Syntax
// errors give the byte position; error texts quote at most a short prefix.
Json parse_json(std::string_view text, const std::string& where);

// Parses a JSON file; a syntax error names the file and byte position.
Json read_json_file(const std::filesystem::path& path);

// The byte offset at which `text` nests deeper than `max_depth` arrays/objects
// (strings are skipped), or npos.
std::size_t json_depth_exceeded(std::string_view text, int max_depth = kMaxJsonDepth);

// At most `max_chars` of a value's JSON text (then "..."), for error messages:
// bounded in time, output and recursion however large or deep the value is.
std::string json_excerpt(const Json& j, std::size_t max_chars = 60);
// At most `max_chars` of a text, then "... (N bytes)".
std::string text_excerpt(std::string_view s, std::size_t max_chars = 60);

// Typed access to one JSON object read from `file`.
class JsonFields {
 public:
  JsonFields(const Json& j, std::string file) : j_(j), file_(std::move(file)) {}
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  const Json& raw() const { return j_; }
  const std::string& file() const { return file_; }

  template <class T>
  T req(const std::string& key) const {
    if (!has(key)) fail(file_, ": missing field '", key, "'");
    return as<T>(key);
  }
  template <class T>
  T opt(const std::string& key, T def) const {
    return has(key) ? as<T>(key) : def;
  }

 private:
  template <class T>
  T as(const std::string& key) const {
    try {
      const Json& v = j_[key];
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        if (!v.is_number_integer()) throw std::invalid_argument("not an integer");
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) throw std::invalid_argument("not a number");
      } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::invalid_argument("not a boolean");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) throw std::invalid_argument("not a string");
      }
      return v.get<T>();
    } catch (const std::exception& e) {
      fail(file_, ": field '", key, "' has the wrong type (", json_excerpt(j_[key]), "): ", e.what());
    }
  }
  const Json& j_;
  std::string file_;
};

}  // namespace zotune
