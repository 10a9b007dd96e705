// Where outputs may go: never over a file an input came from and never inside
// an input model directory (`train`, `replay`, `forward` share these checks).
#pragma once
#include <filesystem>

namespace zotune {

// True when `p` is `dir` or lies below it. Symlinks in the existing part of
// either path are resolved first, so `M/../M/x` and a link to M count too.
bool path_is_within(const std::filesystem::path& p, const std::filesystem::path& dir);

// Throws naming both flags when the output `out` would overwrite the input `in`
// (the same file) or land inside it (`in` a directory, e.g. a model).
void check_output_apart(const std::filesystem::path& out, const char* out_flag, const std::filesystem::path& in,
                        const char* in_flag);

}  // namespace zotune
