// Shared by the libFuzzer targets: inputs that parsers take from files are
// written to a private directory under $ZOTUNE_FUZZ_SCRATCH (scripts/fuzz.sh
// makes one and removes it, also when libFuzzer ends the process without
// running atexit handlers), else /dev/shm (or $TMPDIR); zotune::Error is
// the expected outcome of bad input — anything else (a crash, a sanitizer
// report, another exception escaping, a hang) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "base/error.h"

namespace zotune::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* base = std::getenv("ZOTUNE_FUZZ_SCRATCH");
    if (!base) base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(base ? base : "/tmp") / ("zotune-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, std::size_t size) {
  const std::filesystem::path p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                            static_cast<std::streamsize>(size));
  return p;
}

inline std::string_view as_text(const uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

template <class F>
int expect_clean(F&& f) {
  try {
    f();
  } catch (const zotune::Error&) {
  }
  return 0;
}

}  // namespace zotune::fuzz
