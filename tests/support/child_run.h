// One harness for tests that stop a running `zotune` with a signal (SIGINT
// checkpoint, SIGKILL crash safety): spawn the binary, wait for a marker the
// child writes (lines of a journal such as metrics.jsonl, one per step), signal
// it, reap it. StoppedRun says what happened, so a test can assert the signal
// landed mid-run (the child was still running and had logged the steps it
// waited for) instead of passing when the run never got that far.
#pragma once
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace zotune::testing {

inline int count_lines(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

struct StoppedRun {
  bool spawned = false;
  bool running_at_signal = false;  // the child had not exited when the signal was sent
  int marker_lines = 0;            // lines of the marker file when the signal was sent
  int status = 0;                  // waitpid status
  bool killed_by(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

// Runs `ZOTUNE_BINARY args...`, waits (up to `timeout`) until `marker` holds at
// least `lines` lines, sends `sig` and reaps the child.
inline StoppedRun stop_zotune_after(const std::vector<std::string>& args, const std::filesystem::path& marker, int lines,
                                    int sig, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  StoppedRun r;
  std::vector<std::string> all = {ZOTUNE_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, ZOTUNE_BINARY, nullptr, nullptr, argv.data(), environ) != 0) return r;
  r.spawned = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline && count_lines(marker) < lines) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    r.marker_lines = count_lines(marker);
    r.running_at_signal = waitpid(pid, &status, WNOHANG) == 0;
    kill(pid, sig);
    waitpid(pid, &status, 0);
  }
  r.status = status;
  return r;
}

}  // namespace zotune::testing
