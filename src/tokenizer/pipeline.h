// Everything a loaded tokenizer is made of; built by load_pipeline().
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/stages.h"

namespace zotune::tok {

struct Pipeline {
  std::unique_ptr<BpeModel> model;
  AddedVocab added;
  std::unique_ptr<Normalizer> normalizer;        // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;   // may be null
  std::unique_ptr<PostProcessor> post_processor; // may be null
  std::unique_ptr<Decoder> decoder;              // may be null: tokens joined by " "
  std::optional<int32_t> bos, eos, pad, unk;
  bool clean_up_spaces = false;
  int64_t vocab_size = 0;
  std::vector<std::filesystem::path> files;
};

std::shared_ptr<Pipeline> load_pipeline(const std::filesystem::path& dir);

}  // namespace zotune::tok
