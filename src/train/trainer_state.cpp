#include "train/trainer_state.h"

namespace zotune {

namespace {
// "." or a single file name: never a path out of the run directory.
void check_plain_name(const std::string& v, const std::string& file, const char* field) {
  if (v.empty() || v == ".") return;
  if (v == ".." || v.find('/') != std::string::npos || v.find('\0') != std::string::npos)
    fail(file, ": field '", field, "' = ", json_excerpt(Json(v)), " must name an entry of the run directory");
}
}  // namespace

TrainerState parse_trainer_state(const Json& j, const std::string& file) {
  if (!j.is_object()) fail(file, ": not a JSON object");
  JsonFields f(j, file);
  TrainerState s;
  s.step = f.req<int64_t>("step");
  if (s.step < 0) fail(file, ": field 'step' must be >= 0 (got ", s.step, ")");
  s.finished = f.opt<bool>("finished", false);
  s.base_model = f.req<std::string>("base_model");
  s.weights = f.opt<std::string>("weights", "");
  s.updates = f.opt<std::string>("updates", "");
  check_plain_name(s.weights, file, "weights");
  check_plain_name(s.updates, file, "updates");
  if (f.has("run")) {
    if (!j["run"].is_object()) fail(file, ": field 'run' must be an object");
    s.run = j["run"];
  }
  if (f.has("base_model_identity")) {
    if (!j["base_model_identity"].is_object()) fail(file, ": field 'base_model_identity' must be an object");
    s.base_identity = j["base_model_identity"];
  }
  return s;
}

TrainerState read_trainer_state(const std::filesystem::path& file) {
  return parse_trainer_state(read_json_file(file), file.string());
}

}  // namespace zotune
