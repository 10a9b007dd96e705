// `zotune tokenize`: the CLI contract, checked against the library (whose ids
// are checked against the reference vectors in test_tokenizer.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "test_tokenizer_util.h"
#include "tokenizer/tokenizer.h"

namespace zotune {
namespace {

struct CliRun {
  int status;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun zotune(const std::string& args) {
  const auto base = std::filesystem::temp_directory_path() / ("zotune_cli_" + std::to_string(::getpid()));
  const std::string out = base.string() + ".out", err = base.string() + ".err";
  const int rc = std::system((quote(ZOTUNE_BINARY) + " tokenize " + args + " >" + out + " 2>" + err).c_str());
  CliRun r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(out), read_file(err)};
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "{\"ids\": [";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]}\n";
}

TEST(TokenizeCli, EncodeWithAndWithoutSpecialTokens) {
  const std::string dir = quote(test::tokenizer_data("llama2").string());
  CliRun r = zotune("--tokenizer " + dir + " --text 'Hello world'");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\": [1, 15043, 3186]}\n");
  r = zotune("--tokenizer " + dir + " --text 'Hello world' --no-special-tokens");
  EXPECT_EQ(r.out, "{\"ids\": [15043, 3186]}\n");
  r = zotune("--tokenizer " + dir + " --text ''");
  EXPECT_EQ(r.out, "{\"ids\": [1]}\n");
  r = zotune("--tokenizer " + quote(test::tokenizer_data("qwen3").string()) + " --text '<|im_start|>user'");
  EXPECT_EQ(r.out, "{\"ids\": [151644, 872]}\n");
}

TEST(TokenizeCli, TextFileIsReadAsExactBytes) {
  const auto dir = test::tokenizer_data("gpt2");
  const Tokenizer tok = Tokenizer::load(dir);
  const auto file = std::filesystem::temp_directory_path() / ("zotune_cli_text_" + std::to_string(::getpid()));
  const std::string text = "  line1\r\nline2\n\n\ttabbed \xF0\x9F\x98\x80 <|endoftext|> end \n";
  write_file_atomic(file, text);
  const CliRun r = zotune("--tokenizer " + quote(dir.string()) + " --text-file " + quote(file.string()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ids_json(tok.encode(text)));
  write_file_atomic(file, "bad \xC3 utf-8");
  const CliRun bad = zotune("--tokenizer " + quote(dir.string()) + " --text-file " + quote(file.string()));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("not valid UTF-8"), std::string::npos) << bad.err;
  std::filesystem::remove(file);
}

TEST(TokenizeCli, Decode) {
  const std::string dir = quote(test::tokenizer_data("llama2").string());
  CliRun r = zotune("--tokenizer " + dir + " --decode '1,15043,3186'");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"text", "<s> Hello world"}}));
  r = zotune("--tokenizer " + dir + " --decode '1, 15043,3186' --skip-special-tokens");
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"text", "Hello world"}}));
  r = zotune("--tokenizer " + quote(test::tokenizer_data("gpt2").string()) + " --decode '15496,11,995,0,220,50256,447'");
  // The last id is half of a UTF-8 sequence: decoded as U+FFFD, and still valid JSON.
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"text", "Hello, world! <|endoftext|>\xEF\xBF\xBD"}}));
}

TEST(TokenizeCli, Errors) {
  CliRun r = zotune("--tokenizer /nonexistent/tok --text x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/tok"), std::string::npos) << r.err;
  const std::string dir = quote(test::tokenizer_data("llama2").string());
  r = zotune("--tokenizer " + dir + " --decode '1,x'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("'x' is not a token id"), std::string::npos) << r.err;
  r = zotune("--tokenizer " + dir + " --decode '99999'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("99999"), std::string::npos) << r.err;
  r = zotune("--tokenizer " + dir);
  EXPECT_NE(r.status, 0);
  r = zotune("--tokenizer " + dir + " --text a --decode 1");
  EXPECT_NE(r.status, 0);
}

}  // namespace
}  // namespace zotune
