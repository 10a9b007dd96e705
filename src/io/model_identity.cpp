#include "io/model_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/hash.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEdge = uint64_t{1} << 20, kSample = uint64_t{64} << 10;
constexpr int kSamples = 32;

void hash_range(Hasher& h, int fd, uint64_t off, uint64_t n, std::vector<char>& buf, const fs::path& file) {
  buf.resize(n);
  uint64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail(file.string(), ": cannot read: ", r < 0 ? std::strerror(errno) : "file shrank");
    got += static_cast<uint64_t>(r);
  }
  h.update(buf.data(), n);
}

}  // namespace

Json model_identity(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && (n == "config.json" || n == "model.safetensors.index.json" ||
                                (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0)))
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  Hasher h;
  uint64_t total = 0;
  std::vector<char> buf;
  for (const fs::path& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(f.string(), ": cannot open: ", std::strerror(errno));
    struct Close { int fd; ~Close() { ::close(fd); } } closer{fd};
    const uint64_t size = fs::file_size(f);
    const std::string name = f.filename().string();
    h.update(name.data(), name.size() + 1);
    h.update(&size, sizeof size);
    if (size <= 2 * kEdge + kSamples * kSample) {
      hash_range(h, fd, 0, size, buf, f);
    } else {
      hash_range(h, fd, 0, kEdge, buf, f);
      for (int i = 0; i < kSamples; ++i)
        hash_range(h, fd, kEdge + (size - 2 * kEdge - kSample) / (kSamples - 1) * static_cast<uint64_t>(i), kSample,
                   buf, f);
      hash_range(h, fd, size - kEdge, kEdge, buf, f);
    }
    total += size;
  }
  return {{"files", files.size()}, {"bytes", total}, {"sampled_xxh3", hash_hex(h.digest())}};
}

void check_model_identity(const Json& recorded, const fs::path& dir, const std::string& option,
                          const std::string& where) {
  if (recorded.is_null()) return;
  const Json now = model_identity(dir);
  if (!recorded.is_object() || recorded.value("sampled_xxh3", Json()) != now["sampled_xxh3"] ||
      recorded.value("bytes", Json()) != now["bytes"] || recorded.value("files", Json()) != now["files"])
    fail(option, " ", dir.string(), ": this is not the base model the run started from (", where, " records ",
         json_excerpt(recorded), ", the directory now has ", now.dump(),
         "); its weights or config changed since. Restore the original base model, or start a new run from this one");
}

}  // namespace zotune
