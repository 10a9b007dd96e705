// trainer_state.json, as `train --resume` reads it.
#include "fuzz_util.h"
#include "train/trainer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace zotune;
  return fuzz::expect_clean([&] {
    const TrainerState s = read_trainer_state(fuzz::write_input("trainer_state.json", data, size));
    (void)s;
  });
}
