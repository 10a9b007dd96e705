// Validators for numeric options that CLI11 would otherwise take wrapped around
// or negative (`--seed 18446744073709551616`, `--threads -3`, `--top-k -5`).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace zotune::cli {

// A decimal integer in [0, 2^64 - 1].
inline const CLI::Validator kUint64Text(
    [](std::string& s) -> std::string {
      const std::string max = "18446744073709551615";
      if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
        return "'" + s + "' is not a non-negative integer";
      const auto first = s.find_first_not_of('0');
      const std::string digits = first == std::string::npos ? "0" : s.substr(first);
      if (digits.size() > max.size() || (digits.size() == max.size() && digits > max))
        return "'" + s + "' is larger than 2^64 - 1";
      return "";
    },
    "UINT64");

inline const CLI::Validator& kNonNegative = CLI::NonNegativeNumber;

}  // namespace zotune::cli
