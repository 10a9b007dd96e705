#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/fs.h"
#include "base/paths.h"

namespace zotune {
namespace fs = std::filesystem;

RunLock::RunLock(const fs::path& dir) {
  const fs::path mark = dir / kRunMarkFile;
  fd_ = ::open(mark.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create ", mark.string(), ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (e == EWOULDBLOCK)
      fail(dir.string(), " is in use by another zotune run", holder.empty() ? "" : " (pid " + holder + ")",
           "; wait for it to finish or choose another --out");
    fail("cannot lock ", mark.string(), ": ", std::strerror(e));
  }
  // The holder's pid, for the error above (informational only).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock is what matters; a mark without a pid still works.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool run_dir_is_empty(const fs::path& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != kRunMarkFile) return false;
  return true;
}

namespace {
// What `train` writes into OUT before its first trainer_state.json.
bool written_at_startup(const std::string& name) {
  return name == "disk-weights" || name == "updates.jsonl" || name == "metrics.jsonl" ||
         name.find(".tmp") != std::string::npos;
}
}  // namespace

bool clear_unstarted_run(const fs::path& dir) {
  if (!fs::exists(dir / kRunMarkFile) || fs::exists(dir / "trainer_state.json")) return false;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n != kRunMarkFile && !written_at_startup(n)) return false;
  }
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != kRunMarkFile) fs::remove_all(e.path());
  return true;
}

}  // namespace zotune

namespace zotune {

bool claim_bench_work_dir(const fs::path& dir, const fs::path& model) {
  check_output_apart(dir, "--work-dir", model, "--model");
  // Inside a training run (its disk-weights, or a new folder beside them): the
  // run would later take a bench's files for its own.
  for (fs::path p = fs::absolute(dir).lexically_normal(); p.has_relative_path(); p = p.parent_path()) {
    const fs::path up = p.parent_path();
    if (fs::exists(up / kRunMarkFile) || fs::exists(up / "trainer_state.json"))
      fail("--work-dir ", dir.string(), " is inside the training run ", up.string(),
           "; the bench's working copy would be taken for the run's. Choose a directory outside it");
    if (up == p) break;
  }
  std::error_code ec;
  if (!fs::exists(dir)) {
    fs::create_directories(dir);
    write_file_atomic(dir / kBenchMarkFile, "zotune bench working copy\n");
    return true;
  }
  if (!fs::is_directory(dir)) fail("--work-dir ", dir.string(), " is not a directory");
  if (!fs::is_empty(dir) && !fs::exists(dir / kBenchMarkFile)) {
    const bool working_copy = fs::exists(dir / "disk-manifest.json"), model_dir = fs::exists(dir / "config.json");
    fail("--work-dir ", dir.string(), " is not empty and zotune bench did not create it",
         working_copy ? " (it holds a disk-tier working copy, e.g. a training run's disk-weights)"
         : model_dir  ? " (it holds a model)"
                      : "",
         "; its files would be overwritten. Choose a new or empty directory");
  }
  write_file_atomic(dir / kBenchMarkFile, "zotune bench working copy\n");
  return false;
}

}  // namespace zotune
