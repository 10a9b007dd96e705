#include "base/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string temp_name(const fs::path& path) {
  static std::atomic<unsigned> counter{0};
  return path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(const ByteSink&)>& produce) {
  const std::string tmp = temp_name(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create ", tmp, ": ", std::strerror(errno));
  auto cleanup = [&] {
    if (fd >= 0) ::close(fd);
    fd = -1;
    ::unlink(tmp.c_str());
  };
  try {
    ByteSink sink = [&](const void* data, std::size_t n) {
      const char* p = static_cast<const char*>(data);
      while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          fail("cannot write ", path.string(), ": ", std::strerror(errno));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
      }
    };
    produce(sink);
    if (::fsync(fd) != 0) fail("cannot write ", path.string(), " (fsync): ", std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      fail("cannot write ", path.string(), " (close): ", std::strerror(errno));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      fail("cannot rename ", tmp, " to ", path.string(), ": ", std::strerror(errno));
  } catch (...) {
    cleanup();
    throw;
  }
  fsync_dir(path.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  write_file_atomic(path, [&](const ByteSink& sink) { sink(bytes.data(), bytes.size()); });
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path.string(), " is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path.string(), ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("cannot read ", path.string());
  return ss.str();
}

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  std::string bytes = read_file(from);
  write_file_atomic(to, bytes);
}

}  // namespace zotune
