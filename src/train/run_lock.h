// The lock and mark of a training run's output directory.
//
// `train` creates OUT/.zotune-run before it writes anything else and holds an
// exclusive flock on it for the run's life (the kernel drops it when the process
// dies, however it dies). So:
//   - a second run (or resume) on the same OUT fails at once with a clear error;
//   - a directory killed before trainer_state.json exists is still recognisably
//     zotune's: it holds only the mark and files zotune writes, and a fresh run
//     with the same --out clears them and starts again (nothing of value was made:
//     no step was recorded).
#pragma once
#include <filesystem>
#include <string>

namespace zotune {

inline constexpr const char* kRunMarkFile = ".zotune-run";

class RunLock {
 public:
  // Creates OUT/.zotune-run if needed and locks it; throws naming the directory
  // (and the holder's pid) when another process holds it.
  explicit RunLock(const std::filesystem::path& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// `zotune bench --work-dir DIR`: DIR must be new, empty or one an earlier bench
// marked (DIR/.zotune-bench-work); a non-empty directory of anything else (a
// run's disk-weights, a model folder, the user's files), or one inside a
// training run's directory or the --model directory, is refused untouched.
// Creates DIR if needed, marks it, and returns true when it created it.
inline constexpr const char* kBenchMarkFile = ".zotune-bench-work";
bool claim_bench_work_dir(const std::filesystem::path& dir, const std::filesystem::path& model);

// True when `dir` holds nothing but the run mark (a fresh run may use it).
bool run_dir_is_empty(const std::filesystem::path& dir);

// A directory zotune created for a run that was stopped before its first
// trainer_state.json: the mark is there, trainer_state.json is not, and every
// other entry is a file zotune writes at start-up. Such a directory is cleared
// (the mark stays) and true is returned; anything else returns false untouched.
bool clear_unstarted_run(const std::filesystem::path& dir);

}  // namespace zotune
