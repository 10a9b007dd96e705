// The stages of an HF tokenizer pipeline other than the model:
// normalizer -> pre-tokenizer -> (model) -> post-processor, and the decoder.
// Each stage is built from its tokenizer.json object; a Where names the file
// and the field for error messages.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/json_file.h"
#include "tokenizer/check.h"
#include "tokenizer/function_ref.h"

namespace zotune::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// Receives pre-tokenized pieces. at_start: the piece begins at offset 0 of the
// original text (Metaspace's prepend_scheme "first" needs it).
using PieceSink = FunctionRef<void(std::string_view piece, bool at_start)>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits `text` (never empty) into pieces; empty pieces are never emitted.
  virtual void split(std::string_view text, bool at_start, PieceSink out) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF's decode_chain: token strings in, transformed token strings out.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

struct Where {
  std::string file;
  std::string field;
  Where at(std::string_view key) const { return {file, field + "." + std::string(key)}; }
  Where at(std::size_t index) const { return {file, field + "[" + std::to_string(index) + "]"}; }
  // "FILE: field 'FIELD'", the prefix of every error message about this field.
  std::string str() const { return file + ": field '" + field + "'"; }
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Called only when special tokens are to be added.
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& where);
std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& where);
std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const Where& where);

// The "type" of a stage object, with errors naming where.
std::string stage_type(const Json& j, const Where& where);

// Building blocks used directly by the loaders of vocab.json + merges.txt.
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);
std::unique_ptr<Decoder> make_byte_level_decoder();
// BOS ids, the sequence, EOS ids (what TemplateProcessing "bos $A eos" does).
std::unique_ptr<PostProcessor> make_wrap_post_processor(std::vector<int32_t> before,
                                                        std::vector<int32_t> after);

// The pre-tokenizer regexes of the supported families, for loaders and tests.
extern const char* const kGpt2Pattern;
extern const char* const kQwen2Pattern;
extern const char* const kLlama3Pattern;

}  // namespace zotune::tok
