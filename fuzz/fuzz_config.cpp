// config.json: JSON text -> architecture (every supported model_type) -> tensor table.
#include "fuzz_util.h"
#include "io/json_file.h"
#include "model/architecture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace zotune;
  return fuzz::expect_clean([&] {
    const Json j = parse_json(fuzz::as_text(data, size), "config.json");
    auto arch = make_architecture(j, "config.json");
    int64_t total = 0;
    for (const auto& t : arch->tensors()) total += t.numel();
    (void)total;
  });
}
