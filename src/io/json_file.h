// JSON files with errors that name the file and the field.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/error.h"

namespace zotune {

using Json = nlohmann::json;

// Parses a JSON file; a syntax error names the file and byte position.
Json read_json_file(const std::filesystem::path& path);

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
      fail(file_, ": field '", key, "' has the wrong type (", j_[key].dump(), "): ", e.what());
    }
  }
  const Json& j_;
  std::string file_;
};

}  // namespace zotune
