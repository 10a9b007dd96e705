// tokenizer.json: loading (every normalizer, pre-tokenizer, model, post-processor
// and decoder the loader accepts), then one encode/decode round.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace zotune;
  return fuzz::expect_clean([&] {
    fuzz::write_input("tokenizer.json", data, size);
    const Tokenizer tok = Tokenizer::load(fuzz::scratch_dir());
    const auto ids = tok.encode("Hello world, 123 <|endoftext|> \xC3\xA9t\xC3\xA9!", true);
    (void)tok.decode(ids, false);
  });
}
