// zotune forward --model DIR --input IN.json --output OUT.safetensors
// IN.json: {"input_ids": [[...], ...], "attention_mask": [[...], ...]} (mask optional).
// OUT: "logits" F32 [B, T, V] and "loss" F32 [] (mean next-token cross-entropy over
// positions whose mask is 1 and whose target is not padding).
#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "base/paths.h"
#include "base/threads.h"
#include "commands.h"
#include "option_checks.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/model.h"

namespace zotune::cli {

namespace {
struct ForwardArgs {
  std::string model, input, output;
  int threads = 0;
};

std::vector<std::vector<int64_t>> read_matrix(const Json& j, const std::string& file, const std::string& field) {
  if (!j.is_array() || j.empty()) fail(file, ": field '", field, "' must be a non-empty list of lists of integers");
  std::vector<std::vector<int64_t>> rows;
  for (std::size_t b = 0; b < j.size(); ++b) {
    const Json& r = j[b];
    if (!r.is_array() || r.empty()) fail(file, ": field '", field, "[", b, "]' must be a non-empty list of integers");
    std::vector<int64_t> row;
    for (std::size_t t = 0; t < r.size(); ++t) {
      if (!r[t].is_number_integer()) fail(file, ": field '", field, "[", b, "][", t, "]' is not an integer");
      row.push_back(r[t].get<int64_t>());
    }
    if (!rows.empty() && row.size() != rows[0].size())
      fail(file, ": field '", field, "[", b, "]' has ", row.size(), " entries, row 0 has ", rows[0].size(),
           " (pad the batch to one length)");
    rows.push_back(std::move(row));
  }
  return rows;
}

void run_forward(const ForwardArgs& a) {
  set_compute_threads(a.threads);
  check_output_apart(a.output, "--output", a.model, "--model");
  check_output_apart(a.output, "--output", a.input, "--input");
  Json in = read_json_file(a.input);
  if (!in.is_object() || !in.contains("input_ids")) fail(a.input, ": missing field 'input_ids'");
  auto ids = read_matrix(in["input_ids"], a.input, "input_ids");
  const int64_t B = static_cast<int64_t>(ids.size()), T = static_cast<int64_t>(ids[0].size());
  std::vector<std::vector<int64_t>> mask;
  if (in.contains("attention_mask") && !in["attention_mask"].is_null()) {
    mask = read_matrix(in["attention_mask"], a.input, "attention_mask");
    if (static_cast<int64_t>(mask.size()) != B || static_cast<int64_t>(mask[0].size()) != T)
      fail(a.input, ": field 'attention_mask' must have the shape of 'input_ids' [", B, ", ", T, "]");
  }
  LoadedModel m = load_model(a.model);
  const int64_t V = m.arch->config().vocab_size;
  std::vector<int32_t> flat(static_cast<std::size_t>(B * T));
  std::vector<uint8_t> flat_mask(static_cast<std::size_t>(B * T), 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = ids[b][t];
      if (id < 0 || id >= V)
        fail(a.input, ": field 'input_ids[", b, "][", t, "]' = ", id, " is outside the vocabulary [0, ", V, ")");
      flat[static_cast<std::size_t>(b * T + t)] = static_cast<int32_t>(id);
      if (!mask.empty()) {
        const int64_t mv = mask[b][t];
        if (mv != 0 && mv != 1) fail(a.input, ": field 'attention_mask[", b, "][", t, "]' must be 0 or 1");
        flat_mask[static_cast<std::size_t>(b * T + t)] = static_cast<uint8_t>(mv);
      }
    }
  ForwardPass pass(*m.arch);
  pass.start(flat.data(), flat_mask.data(), B, T);
  pass.run_body(m.weights->ptrs());
  Tensor logits({B, T, V});
  pass.all_logits(m.weights->ptrs(), logits.data());
  float loss = static_cast<float>(next_token_loss(logits.data(), flat.data(), flat_mask.data(), B, T, V));
  write_safetensors(a.output, {{"logits", logits.view()}, {"loss", TensorView{DType::F32, {}, &loss}}});
  // JSON has no NaN: a loss without a finite value (no scored position) is null.
  char loss_text[32] = "null";
  if (std::isfinite(loss)) std::snprintf(loss_text, sizeof loss_text, "%.8g", loss);
  std::printf("{\"batch\": %lld, \"tokens\": %lld, \"vocab\": %lld, \"loss\": %s, \"output\": %s}\n",
              static_cast<long long>(B), static_cast<long long>(T), static_cast<long long>(V), loss_text,
              Json(a.output).dump().c_str());
}
}  // namespace

void register_forward(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  auto* cmd = app.add_subcommand("forward", "Compute logits and loss for a batch of token ids");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_option("--input", args->input, "JSON with input_ids and optional attention_mask")->required();
  cmd->add_option("--output", args->output, "safetensors file to write (logits, loss)")->required();
  cmd->add_option("--threads", args->threads, "compute threads (default: all cores)")->check(kNonNegative);
  cmd->callback([args] { set_action([args] { run_forward(*args); }); });
}

}  // namespace zotune::cli
