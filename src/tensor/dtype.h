// Storage element types. Compute is always fp32; these describe how bytes
// are stored in files and in the slow tiers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace zotune {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

// safetensors spelling: "F32", "BF16", ...
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view s);
// CLI spelling: fp32 / bf16 / fp16 (also accepts the safetensors names).
std::optional<DType> dtype_from_cli(std::string_view s);
inline bool is_float_storage(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace zotune
