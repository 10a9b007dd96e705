// Helpers shared by tests: temp directories, running the CLI, synthetic batches.
#pragma once
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/batch.h"
#include "io/json_file.h"

namespace zotune::testing {

inline std::filesystem::path source_dir() { return ZOTUNE_SOURCE_DIR; }
inline std::filesystem::path golden_dir() { return source_dir() / "tests" / "golden"; }

// A fresh directory under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/zotune-test-XXXXXX";
    if (!mkdtemp(templ.data())) std::abort();
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs the zotune binary with a shell-quoted argument string, after a command
// prefix that sets its environment (e.g. "env -u OPENBLAS_CORETYPE").
inline RunResult run_zotune_env(const std::string& env_prefix, const std::string& args) {
  RunResult r;
  std::string cmd = env_prefix + " '" + ZOTUNE_BINARY + "' " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return r;
}

inline RunResult run_zotune(const std::string& args) { return run_zotune_env("", args); }

inline std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// Token sequences in [0, V) from a fixed LCG, one stream: each call goes on
// where the last one stopped.
class TokenStream {
 public:
  TokenStream(int64_t V, uint32_t seed) : V_(static_cast<uint32_t>(V)), x_(seed) {}
  std::vector<int32_t> operator()(int64_t len) {
    std::vector<int32_t> s;
    for (int64_t i = 0; i < len; ++i) {
      x_ = x_ * 1664525u + 1013904223u;
      s.push_back(static_cast<int32_t>((x_ >> 8) % V_));
    }
    return s;
  }

 private:
  uint32_t V_, x_;
};

// B sequences of T tokens in [0, V) from TokenStream, every next token scored.
inline Batch random_lm_batch(int64_t V, int64_t B, int64_t T, uint32_t seed) {
  return language_model_batch(TokenStream(V, seed)(B * T), B, T);
}

// The records of a run's metrics.jsonl, in order.
inline std::vector<Json> metrics(const std::filesystem::path& run) {
  std::vector<Json> r;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) r.push_back(Json::parse(line));
  return r;
}

// A file's bytes ("" if it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace zotune::testing
