// specoffload run: a JSONL batch job (OpenAI Batch API lines or plain prompt/messages
// lines) through the throughput scheduler, resumable and shardable.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"
#include "progress.h"
#include "runtime/batch_job.h"

namespace so::cli {
namespace {

struct RunOptions {
  ModelOptions model;
  BatchOptions batch;
  SamplingOptions sampling;
  SpecCliOptions spec;
  std::string input;
  std::string output;
  std::string errors;  // empty: error records go to the output
  std::string shard = "0/1";
  int max_tokens = 256;
  std::string chat_template;
  bool ignore_eos = false;
  std::string progress = "auto";
  std::string stats_json;
};

// What run() hands the engine, one entry per request.
struct Pending {
  BatchRequest request;
  int64_t prompt_tokens = 0;
};

int run_batch(const RunOptions& options) {
  auto shard = parse_shard(options.shard);
  if (!shard.ok()) return report_error(shard.status());
  const auto [shard_index, shard_count] = *shard;
  auto engine_config = engine_options(options.model, options.batch, options.spec);
  if (!engine_config.ok()) return report_error(engine_config.status());
  std::ifstream in(options.input, std::ios::binary);
  if (!in) return report_error(io_error("cannot open the input '", options.input, "'"));

  // Resume: what the outputs already hold (a torn last record is cut off first).
  BatchDone done;
  if (Status s = recover_batch_output(options.output, done); !s.ok()) return report_error(s);
  if (!options.errors.empty()) {
    if (Status s = recover_batch_output(options.errors, done); !s.ok()) return report_error(s);
  }
  auto output = DurableLineWriter::open(options.output);
  if (!output.ok()) return report_error(output.status());
  Result<DurableLineWriter> errors_file =
      options.errors.empty() ? Result<DurableLineWriter>(invalid_argument("none")) : DurableLineWriter::open(options.errors);
  if (!options.errors.empty() && !errors_file.ok()) return report_error(errors_file.status());
  DurableLineWriter& error_writer = options.errors.empty() ? *output : *errors_file;

  auto engine_or = Engine::create(*engine_config);
  if (!engine_or.ok()) return report_error(engine_or.status());
  Engine& engine = **engine_or;
  const SamplingParams defaults = sampling_params(options.sampling);
  if (Status valid = defaults.validate(); !valid.ok()) return report_error(valid);
  const Tokenizer& tokenizer = engine.tokenizer();
  const std::string model_name = std::filesystem::path(engine_config->model_path).filename().string();

  Status write_failure = Status::Ok();
  int64_t lines = 0, errors = 0, skipped = 0, completed = 0;
  auto write_error = [&](int64_t line, const std::string& id, std::string_view code, const std::string& message) {
    Status s = error_writer.append(batch_error_record(line, id, code, message));
    if (!s.ok() && write_failure.ok()) write_failure = s;
    ++errors;
  };

  std::vector<Pending> pending;
  std::vector<GenerationRequest> requests;
  std::unordered_map<std::string, int64_t> first_line_of;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    if (line % shard_count != shard_index) continue;
    ++lines;
    const std::string id = batch_line_id(text, line);
    const bool duplicate = first_line_of.count(id) > 0;
    if (!duplicate) first_line_of[id] = line;
    if (done.lines.count(line) > 0) {
      ++skipped;
      continue;
    }
    if (duplicate) {
      write_error(line, id, "duplicate_custom_id",
                  str_cat("line ", line, ": custom_id '", id, "' was already used on line ", first_line_of[id],
                          "; every request needs its own id"));
      continue;
    }
    auto request = parse_batch_line(text, line);
    if (!request.ok()) {
      write_error(line, id, "invalid_request", request.status().message());
      continue;
    }
    auto prompt_tokens = api_prompt_tokens(engine, request->api, options.chat_template);
    if (!prompt_tokens.ok()) {
      write_error(line, id, "invalid_request", str_cat("line ", line, ": ", prompt_tokens.status().message()));
      continue;
    }
    GenerationRequest generation;
    generation.prompt_tokens = std::move(prompt_tokens).value();
    generation.max_tokens = request->api.max_tokens.value_or(options.max_tokens);
    generation.sampling = api_sampling(defaults, request->api);
    generation.ignore_eos = options.ignore_eos;
    generation.stop = request->api.stop;
    generation.stream_id = uint64_t(line);  // stable across restarts and shards
    if (Status valid = generation.sampling.validate(); !valid.ok()) {
      write_error(line, id, "invalid_request", str_cat("line ", line, ": ", valid.message()));
      continue;
    }
    pending.push_back({std::move(request).value(), int64_t(generation.prompt_tokens.size())});
    requests.push_back(std::move(generation));
  }

  const bool live = options.progress == "bar" || (options.progress == "auto" && ::isatty(STDERR_FILENO));
  Progress progress(lines, options.progress == "off" ? Progress::Mode::kOff
                           : live                    ? Progress::Mode::kLive
                                                     : Progress::Mode::kLog);
  progress.skip(skipped + errors);
  progress.update(true);
  const TokenCallback on_token = [&](size_t, int32_t) {
    progress.add_tokens(1);
    progress.update();
  };
  const FinishCallback on_finish = [&](size_t i, const GenerationResult& result) {
    const BatchRequest& request = pending[i].request;
    Status s;
    if (result.finish == FinishReason::kError) {
      s = error_writer.append(batch_error_record(request.line, request.custom_id, "request_failed",
                                                 str_cat("line ", request.line, ": ", result.error.message())));
      ++errors;
    } else {
      const ApiCompletion completion{completion_text(tokenizer, result), api_finish_reason(result),
                                     pending[i].prompt_tokens, int64_t(result.tokens.size())};
      s = output->append(batch_success_record(request, model_name, completion));
      ++completed;
    }
    if (!s.ok() && write_failure.ok()) write_failure = s;
    progress.finish_request(result.drafted_tokens, result.accepted_tokens);
  };
  engine.generate(requests, on_token, on_finish);
  const double finished_unix = unix_seconds_now();
  progress.end();

  const EngineStats& stats = engine.stats();
  const nlohmann::ordered_json summary = {
      {"input", options.input},
      {"output", options.output},
      {"shard", options.shard},
      {"lines", lines},
      {"completed", completed},
      {"errors", errors},
      {"already_done", skipped},
      {"repaired_torn_record", done.repaired},
      {"generated_tokens", progress.tokens()},
      {"seconds", progress.elapsed()},
      {"tokens_per_second", progress.tokens() / std::max(progress.elapsed(), 1e-9)},
      {"acceptance", stats.acceptance_rate()},
      {"backend", engine.backend_name()}};
  std::cout << summary.dump() << "\n";
  if (!write_failure.ok()) return report_error(write_failure);
  if (!options.stats_json.empty()) {
    if (Status written = write_stats_json(engine, options.stats_json, finished_unix); !written.ok()) {
      return report_error(written);
    }
  }
  return 0;
}

}  // namespace

Command register_run(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand(
      "run", "a JSONL batch job: OpenAI Batch API lines (or {\"prompt\"}/{\"messages\"} lines) in, Batch API records "
             "out; resumable after a crash, shardable");
  add_model_options(*command, options->model);
  add_batch_options(*command, options->batch);
  add_sampling_options(*command, options->sampling);
  add_spec_options(*command, options->spec);
  command->add_option("-i,--input", options->input, "JSONL requests")->required();
  command->add_option("-o,--output", options->output, "JSONL records, appended (a rerun resumes where it stopped)")
      ->required();
  command->add_option("--errors", options->errors, "error records go here (default: into the output)");
  command->add_option("--shard", options->shard, "I/N: take the I-th of N deterministic shares of the input lines")
      ->capture_default_str();
  command->add_option("-n,--max-tokens", options->max_tokens, "tokens per request when it names none")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  command->add_option("--chat-template", options->chat_template, "force a template: chatml, llama2, mistral, llama3");
  command->add_flag("--ignore-eos", options->ignore_eos, "keep generating past end-of-generation tokens");
  command->add_option("--progress", options->progress, "auto (a bar on a terminal, log lines otherwise), bar, log, off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bar", "log", "off"}));
  command->add_option("--stats-json", options->stats_json,
                      "write the job's stats (tokens, seconds, bytes) and per-pass records as JSON");
  return {command, [options] { return run_batch(*options); }};
}

}  // namespace so::cli
