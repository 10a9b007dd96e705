// Errors: library code throws zotune::Error with a message that names the file,
// tensor, field or line at fault; the CLI catches once and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace zotune {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// fail("file ", path, ": tensor '", name, "' ...") — concatenates with operator<<.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  throw Error(os.str());
}

template <class... Parts>
void check(bool ok, Parts&&... parts) {
  if (!ok) fail(std::forward<Parts>(parts)...);
}

}  // namespace zotune
