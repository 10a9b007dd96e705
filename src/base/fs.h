// File helpers. Every file zotune writes goes through write_file_atomic:
// temp file in the same directory, write, fsync, rename, fsync the directory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace zotune {

// Receives a writer; the writer calls `write(data, n)` as often as it likes.
using ByteSink = std::function<void(const void* data, std::size_t n)>;

// Writes `path` atomically. On any error (including ENOSPC) the temp file is
// removed, `path` is untouched, and zotune::Error names the file.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const ByteSink&)>& produce);
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

std::string read_file(const std::filesystem::path& path);

// Copies a file atomically (used for tokenizer files copied into outputs).
void copy_file_atomic(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace zotune
