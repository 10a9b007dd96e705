#include "base/paths.h"

#include "base/error.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::absolute(p).lexically_normal() : r;
}
}  // namespace

bool path_is_within(const fs::path& p, const fs::path& dir) {
  const fs::path a = resolved(p), d = resolved(dir);
  auto ai = a.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++ai) {
    if (di->empty() && std::next(di) == d.end()) break;  // a trailing separator
    if (ai == a.end() || *ai != *di) return false;
  }
  return true;
}

void check_output_apart(const fs::path& out, const char* out_flag, const fs::path& in, const char* in_flag) {
  if (in.empty() || out.empty()) return;
  std::error_code ec;
  if (fs::is_directory(in, ec)) {
    if (path_is_within(out, in))
      fail(out_flag, " ", out.string(), " is inside the input ", in_flag, " directory ", in.string(),
           "; the input is never modified (choose an output outside it)");
    return;
  }
  if (fs::exists(in, ec) && resolved(out) == resolved(in))
    fail(out_flag, " ", out.string(), " is the input ", in_flag, " file; the input is never overwritten");
}

}  // namespace zotune
