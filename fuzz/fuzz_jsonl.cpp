// Training/eval JSONL records: every record shape (pre-tokenized; text shapes
// need a tokenizer and must fail cleanly) and, by the first byte, a MeZO task.
#include "data/dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace zotune;
  if (size == 0) return 0;
  static const char* kTasks[] = {"", "", "", "", "sst2", "rte", "cb", "boolq", "copa", "multirc", "record", "squad"};
  DatasetOptions o;
  o.max_length = 1 + data[0] % 64;  // 1 is rejected; the rest cut prompts in every way
  o.vocab_size = 1000;
  o.task = kTasks[data[0] % (sizeof kTasks / sizeof *kTasks)];
  return fuzz::expect_clean([&] {
    Dataset d = Dataset::parse_jsonl(fuzz::as_text(data + 1, size - 1), "fuzz.jsonl", o, nullptr);
    (void)d.size();
  });
}
