// specoffload logits: raw logits of sequences run as one ragged batch (for parity tests
// against llama.cpp and for debugging).
//
// Input JSON: {"sequences": [{"tokens": [...], "prefill": P}, ...]}. Step one feeds each
// sequence's first P tokens; then every sequence with tokens left feeds one per step,
// all sequences in the same step. Output: float32 little-endian, per sequence, per token,
// n_vocab logits. Prints {"n_vocab": V, "n_tokens": [...]} on stdout.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"

namespace so::cli {
namespace {

struct LogitsOptions {
  ModelOptions model;
  BatchOptions batch;  // where weights and KV live: the logits of a streamed pass are the resident one's
  std::string input;
  std::string output;
};

struct Sequence {
  std::vector<int32_t> tokens;
  int32_t prefill = 0;
  int32_t kv_row = 0;
  int32_t fed = 0;
};

Result<std::vector<Sequence>> read_request(const std::string& path) {
  std::ifstream in(path);
  if (!in) return io_error("cannot open '", path, "'");
  nlohmann::json request = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.contains("sequences") || !request["sequences"].is_array()) {
    return format_error("'", path, "' should be JSON {\"sequences\": [{\"tokens\": [...], \"prefill\": N}, ...]}");
  }
  std::vector<Sequence> sequences;
  for (const auto& item : request["sequences"]) {
    Sequence sequence;
    if (!item.contains("tokens") || !item["tokens"].is_array()) return format_error("a sequence lacks \"tokens\"");
    for (const auto& token : item["tokens"]) {
      if (!token.is_number_integer()) return format_error("token ids must be integers, found ", token.dump());
      sequence.tokens.push_back(token.get<int32_t>());
    }
    sequence.prefill = item.value("prefill", static_cast<int32_t>(sequence.tokens.size()));
    if (sequence.tokens.empty() || sequence.prefill < 1 || sequence.prefill > int32_t(sequence.tokens.size())) {
      return format_error("each sequence needs tokens and 1 <= prefill <= its length");
    }
    sequences.push_back(std::move(sequence));
  }
  return sequences;
}

int run_logits(const LogitsOptions& options) {
  auto sequences_or = read_request(options.input);
  if (!sequences_or.ok()) return report_error(sequences_or.status());
  std::vector<Sequence>& sequences = *sequences_or;
  auto engine_config = engine_options(options.model, options.batch);
  if (!engine_config.ok()) return report_error(engine_config.status());
  auto engine_or = Engine::create(*engine_config);
  if (!engine_or.ok()) return report_error(engine_or.status());
  Engine& engine = **engine_or;
  const int64_t n_vocab = engine.config().n_vocab;

  // logits[s] = (n_tokens_s, n_vocab)
  std::vector<std::vector<float>> logits(sequences.size());
  for (auto& sequence : sequences) sequence.kv_row = engine.kv_cache().add_row();
  std::vector<float> step_logits;
  bool first_step = true;
  while (true) {
    StepBuilder step(engine.kv_cache());
    std::vector<size_t> in_step;
    for (size_t s = 0; s < sequences.size(); ++s) {
      Sequence& sequence = sequences[s];
      const int32_t count =
          first_step ? sequence.prefill : std::min<int32_t>(1, int32_t(sequence.tokens.size()) - sequence.fed);
      if (count == 0) continue;
      Status added = step.add_row(
          sequence.kv_row, std::span<const int32_t>(sequence.tokens.data() + sequence.fed, count), LogitsWanted::kAll);
      if (!added.ok()) return report_error(added);
      in_step.push_back(s);
    }
    if (in_step.empty()) break;
    if (Status status = engine.forward(step, step_logits); !status.ok()) return report_error(status);
    int64_t offset = 0;
    for (size_t i = 0; i < in_step.size(); ++i) {
      Sequence& sequence = sequences[in_step[i]];
      const int32_t n_tokens = step.input().rows[i].kv.n_tokens;
      const int64_t values = int64_t(n_tokens) * n_vocab;
      logits[in_step[i]].insert(logits[in_step[i]].end(), step_logits.begin() + offset,
                                step_logits.begin() + offset + values);
      offset += values;
      sequence.fed += n_tokens;
    }
    first_step = false;
  }

  std::ofstream out(options.output, std::ios::binary);
  if (!out) return report_error(io_error("cannot write '", options.output, "'"));
  nlohmann::json summary = {{"n_vocab", n_vocab}, {"n_tokens", nlohmann::json::array()}};
  for (size_t s = 0; s < sequences.size(); ++s) {
    out.write(reinterpret_cast<const char*>(logits[s].data()), std::streamsize(logits[s].size() * sizeof(float)));
    summary["n_tokens"].push_back(sequences[s].tokens.size());
  }
  if (!out) return report_error(io_error("writing '", options.output, "' failed"));
  std::cout << summary.dump() << "\n";
  return 0;
}

}  // namespace

Command register_logits(CLI::App& app) {
  auto options = std::make_shared<LogitsOptions>();
  CLI::App* command = app.add_subcommand("logits", "write raw logits of token sequences run as one ragged batch");
  add_model_options(*command, options->model);
  add_batch_options(*command, options->batch);
  command->add_option("--input", options->input, "request JSON")->required();
  command->add_option("--output", options->output, "output file of float32 logits")->required();
  return {command, [options] { return run_logits(*options); }};
}

}  // namespace so::cli
