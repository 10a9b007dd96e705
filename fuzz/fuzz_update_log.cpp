// updates.jsonl: the update-log reader and replay's checks of it.
#include "fuzz_util.h"
#include "train/update_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace zotune;
  return fuzz::expect_clean([&] {
    const auto path = fuzz::write_input("updates.jsonl", data, size);
    UpdateLog log = read_update_log(path);
    check_log_for_model(log, path, "gpt2", 124439808, std::nullopt);
    check_log_for_model(log, path, "gpt2", 124439808, static_cast<int64_t>(log.records.size()));
  });
}
