#include "tensor/dtype.h"

#include <array>
#include <utility>

namespace zotune {

namespace {
constexpr std::array<std::pair<DType, std::string_view>, 10> kNames{{
    {DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"}, {DType::F64, "F64"},
    {DType::I8, "I8"},   {DType::U8, "U8"},   {DType::I16, "I16"},   {DType::I32, "I32"},
    {DType::I64, "I64"}, {DType::BOOL, "BOOL"},
}};
}

std::string_view dtype_name(DType t) {
  for (auto& [d, n] : kNames)
    if (d == t) return n;
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view s) {
  for (auto& [d, n] : kNames)
    if (n == s) return d;
  return std::nullopt;
}

std::optional<DType> dtype_from_cli(std::string_view s) {
  if (s == "fp32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "fp16" || s == "float16") return DType::F16;
  return dtype_from_name(s);
}

}  // namespace zotune
