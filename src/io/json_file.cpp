#include "io/json_file.h"

#include "base/fs.h"

namespace zotune {

Json read_json_file(const std::filesystem::path& path) {
  std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail(path.string(), ": invalid JSON at byte ", e.byte, ": ", e.what());
  }
}

}  // namespace zotune
