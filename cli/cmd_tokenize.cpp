// zotune tokenize: text -> token ids, or ids -> text, with a model's tokenizer.
//
//   zotune tokenize --tokenizer DIR --text "Hello"        -> {"ids": [15043]}
//   zotune tokenize --tokenizer DIR --text-file notes.txt  (the file's bytes, as one UTF-8 text)
//   zotune tokenize --tokenizer DIR --decode "1,15043"     -> {"text": "<s> Hello"}
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "commands.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

namespace zotune::cli {

namespace {

struct TokenizeOptions {
  std::string dir;
  std::string text;
  std::string text_file;
  std::string decode;
  bool no_special_tokens = false;
  bool skip_special_tokens = false;
};

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::size_t pos = 0;
  while (pos < list.size()) {
    std::size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(pos, end - pos);
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    char* stop = nullptr;
    const long long v = std::strtoll(item.c_str(), &stop, 10);
    check(!item.empty() && *stop == '\0' && v >= 0 && v <= INT32_MAX, "--decode: '", item,
          "' is not a token id (expected comma-separated integers, e.g. \"1,2,3\")");
    ids.push_back(static_cast<int32_t>(v));
    pos = end + 1;
  }
  return ids;
}

void run_tokenize(const TokenizeOptions& o, bool has_file, bool has_decode) {
  const Tokenizer tok = Tokenizer::load(o.dir);
  if (has_decode) {
    const std::vector<int32_t> ids = parse_ids(o.decode);
    std::printf("{\"text\": %s}\n", Json(tok.decode(ids, o.skip_special_tokens)).dump().c_str());
    return;
  }
  const std::string text = has_file ? read_file(o.text_file) : o.text;
  const std::vector<int32_t> ids = tok.encode(text, !o.no_special_tokens);
  std::string out = "{\"ids\": [";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(ids[i]);
  }
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Encode text to token ids (JSON {\"ids\": [...]}) or decode ids (JSON {\"text\": ...})");
  cmd->add_option("--tokenizer", o->dir, "Model directory, or a directory holding only tokenizer files")->required();
  CLI::Option* text = cmd->add_option("--text", o->text, "Text to encode");
  CLI::Option* file = cmd->add_option("--text-file", o->text_file, "File whose bytes are encoded as one UTF-8 text");
  CLI::Option* decode = cmd->add_option("--decode", o->decode, "Comma-separated token ids to decode, e.g. \"1,2,3\"");
  text->excludes(file)->excludes(decode);
  file->excludes(decode);
  cmd->add_flag("--no-special-tokens", o->no_special_tokens,
                "Do not add BOS/EOS etc. (add_special_tokens=False); special tokens in the text are still recognised");
  cmd->add_flag("--skip-special-tokens", o->skip_special_tokens, "With --decode: leave special tokens out");
  cmd->callback([o, text, file, decode] {
    const bool has_text = text->count() > 0, has_file = file->count() > 0, has_decode = decode->count() > 0;
    if (!has_text && !has_file && !has_decode) throw CLI::RequiredError("--text, --text-file or --decode");
    set_action([o, has_file, has_decode] { run_tokenize(*o, has_file, has_decode); });
  });
}

}  // namespace zotune::cli
