// The update log: a run's fine-tuning is fully described by the base model and,
// per step, (seed, lr, g). updates.jsonl holds a header line, then one record per
// step; it is an append-only journal (a torn last line from a crash is ignored).
#pragma once
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "tensor/dtype.h"
#include "zo/mezo.h"

namespace zotune {

struct UpdateLog {
  // format, base_model, base_model_identity, model_type, parameters, storage_dtype,
  // run_seed, perturbation, weight_decay, eps, one_sided
  Json header;
  std::vector<UpdateRecord> records;
  int64_t torn_line = 0;  // > 0: the line number of an incomplete last line (not in records)
};

// The storage dtype a log's run kept θ in (header field "storage_dtype": F32,
// BF16 or F16; F32 when absent): replay must use the same codec, whose
// stochastic rounding is part of the arithmetic. nullopt for another value.
std::optional<DType> log_storage_dtype(const Json& header);

// Every record must have the next step number, a finite lr >= 0 and a finite
// grad (as float32); errors name the file, line and field.
UpdateLog read_update_log(const std::filesystem::path& path);

// For `replay`: the log must be complete (no torn last line unless only the first
// `steps` records are used) and written for a model of this type and parameter
// count; errors name the log file, the header field and both values.
void check_log_for_model(const UpdateLog& log, const std::filesystem::path& path, const std::string& model_type,
                         int64_t parameters, std::optional<int64_t> steps);
// Writes header + records atomically (used to start or truncate a log).
void write_update_log(const std::filesystem::path& path, const UpdateLog& log);

// Appends records to an existing log, one line each, flushed per record.
class UpdateLogAppender {
 public:
  explicit UpdateLogAppender(const std::filesystem::path& path);
  ~UpdateLogAppender();
  UpdateLogAppender(const UpdateLogAppender&) = delete;
  UpdateLogAppender& operator=(const UpdateLogAppender&) = delete;
  void append(const UpdateRecord& r);
  void sync();  // fsync: called at checkpoints

 private:
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

Json update_record_json(const UpdateRecord& r);

}  // namespace zotune
