#include "train/update_log.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"

namespace zotune {

Json update_record_json(const UpdateRecord& r) {
  // lr and the coefficients are float32; stored as doubles they round-trip exactly.
  Json j = {{"step", r.step}, {"lr", static_cast<double>(r.lr)}};
  if (r.terms.size() == 1) {  // MeZO-SGD: (seed, grad), the log's original record
    j["seed"] = r.terms[0].seed;
    j["grad"] = static_cast<double>(r.terms[0].coeff);
    return j;
  }
  Json terms = Json::array();
  for (const auto& t : r.terms) terms.push_back({{"seed", t.seed}, {"coeff", static_cast<double>(t.coeff)}});
  j["terms"] = std::move(terms);
  return j;
}

std::optional<DType> log_storage_dtype(const Json& header) {
  if (!header.contains("storage_dtype")) return DType::F32;  // logs written before 16-bit storage was recorded
  if (!header["storage_dtype"].is_string()) return std::nullopt;
  const auto d = dtype_from_name(header["storage_dtype"].get<std::string>());
  if (!d || !is_float_storage(*d)) return std::nullopt;
  return d;
}

UpdateLog read_update_log(const std::filesystem::path& path) {
  std::string text = read_file(path);
  UpdateLog log;
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    const bool last = in.peek() == std::char_traits<char>::eof();
    Json j;
    try {
      j = parse_json(line, "");
    } catch (const Error& e) {
      if (last && text.back() != '\n' && lineno > 1) {  // a torn final line from a crash
        log.torn_line = lineno;
        break;
      }
      fail(path.string(), ":", lineno, ": ", e.what());
    }
    if (lineno == 1) {
      if (!j.is_object() || !j.contains("format") || j["format"] != "zotune-updates")
        fail(path.string(), ":1: not a zotune update log (field 'format' must be \"zotune-updates\")");
      // The fields replay and resume read, with their types.
      for (const char* k : {"base_model", "model_type", "perturbation", "storage_dtype"})
        if (j.contains(k) && !j[k].is_string()) fail(path.string(), ":1: field '", k, "' must be a string");
      for (const char* k : {"weight_decay", "eps"})
        if (j.contains(k) && !j[k].is_number()) fail(path.string(), ":1: field '", k, "' must be a number");
      for (const char* k : {"parameters", "run_seed", "version"})
        if (j.contains(k) && !j[k].is_number_integer()) fail(path.string(), ":1: field '", k, "' must be an integer");
      if (j.contains("storage_dtype") && !log_storage_dtype(j))
        fail(path.string(), ":1: field 'storage_dtype' = ", json_excerpt(j["storage_dtype"]), " is not F32, BF16 or F16");
      if (j.contains("base_model_identity") && !j["base_model_identity"].is_object())
        fail(path.string(), ":1: field 'base_model_identity' must be an object");
      if (j.contains("one_sided") && !j["one_sided"].is_boolean())
        fail(path.string(), ":1: field 'one_sided' must be true or false");
      log.header = j;
      continue;
    }
    try {
      // Integers must be JSON integers: a float such as 8.9e72 converted to
      // int64 is undefined behaviour (fuzz_update_log, 10-minute run).
      const auto integer = [&](const Json& o, const char* key, bool is_unsigned) -> const Json& {
        const Json& v = o.at(key);
        if (!(is_unsigned ? v.is_number_unsigned() : v.is_number_integer()))
          fail(path.string(), ":", lineno, ": field '", key, "' = ", json_excerpt(v), " must be ",
               is_unsigned ? "an integer >= 0" : "an integer");
        return v;
      };
      UpdateRecord r;
      r.step = integer(j, "step", false).get<int64_t>();
      r.lr = static_cast<float>(j.at("lr").get<double>());
      if (j.contains("terms")) {
        for (const Json& t : j.at("terms"))
          r.terms.push_back({integer(t, "seed", true).get<uint64_t>(), static_cast<float>(t.at("coeff").get<double>())});
      } else {
        r.terms.push_back({integer(j, "seed", true).get<uint64_t>(), static_cast<float>(j.at("grad").get<double>())});
      }
      if (r.step != static_cast<int64_t>(log.records.size()) + 1)
        fail(path.string(), ":", lineno, ": field 'step' is ", r.step, ", expected ", log.records.size() + 1);
      if (!std::isfinite(r.lr) || r.lr < 0)
        fail(path.string(), ":", lineno, ": field 'lr' = ", j.at("lr").dump(), " must be a finite number >= 0");
      for (std::size_t k = 0; k < r.terms.size(); ++k)
        if (!std::isfinite(r.terms[k].coeff))
          fail(path.string(), ":", lineno, ": field '", j.contains("terms") ? "terms[" + std::to_string(k) + "].coeff" : "grad",
               "' = ", j.contains("terms") ? j["terms"][k].at("coeff").dump() : j.at("grad").dump(),
               " is not a finite float32");
      log.records.push_back(r);
    } catch (const Json::exception& e) {
      fail(path.string(), ":", lineno, ": bad update record: ", e.what());
    }
  }
  if (log.header.is_null()) fail(path.string(), ": empty update log");
  return log;
}

void check_log_for_model(const UpdateLog& log, const std::filesystem::path& path, const std::string& model_type,
                         int64_t parameters, std::optional<int64_t> steps) {
  const std::string f = path.string();
  if (log.torn_line > 0 && !(steps && *steps <= static_cast<int64_t>(log.records.size())))
    fail(f, ":", log.torn_line, ": the last line is incomplete (the run was killed while writing it); ",
         log.records.size(), " complete updates precede it: pass --steps ", log.records.size(), " to replay those");
  const Json& h = log.header;
  if (h.contains("model_type") && h["model_type"] != model_type)
    fail(f, ":1: field 'model_type': the log was written for a ", h["model_type"].dump(), " model, --model is ",
         model_type);
  if (h.contains("parameters") && (!h["parameters"].is_number_integer() || h["parameters"].get<int64_t>() != parameters))
    fail(f, ":1: field 'parameters': the log was written for a model of ", h["parameters"].dump(),
         " parameters, --model has ", parameters);
}

void write_update_log(const std::filesystem::path& path, const UpdateLog& log) {
  std::string s = log.header.dump() + "\n";
  for (const auto& r : log.records) s += update_record_json(r).dump() + "\n";
  write_file_atomic(path, s);
}

UpdateLogAppender::UpdateLogAppender(const std::filesystem::path& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "ab");
  if (!f_) fail("cannot open ", path.string(), " for appending: ", std::strerror(errno));
}

UpdateLogAppender::~UpdateLogAppender() {
  if (f_) std::fclose(f_);
}

void UpdateLogAppender::append(const UpdateRecord& r) {
  const std::string s = update_record_json(r).dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size() || std::fflush(f_) != 0)
    fail("cannot write ", path_.string(), ": ", std::strerror(errno));
}

void UpdateLogAppender::sync() {
  if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) fail("cannot write ", path_.string(), ": ", std::strerror(errno));
}

}  // namespace zotune
