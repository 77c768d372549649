// specoffload run: a JSONL batch job (OpenAI Batch API lines or plain prompt/messages
// lines) through the throughput scheduler, resumable and shardable.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "base/file_checks.h"
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

// The paths of a job, before anything runs or any file changes: the input exists and is not
// a directory; the outputs are regular files (appended, synced, read back to resume), none
// of them the input, and --errors is not --output.
Status check_run_paths(const RunOptions& options) {
  SO_TRY(check_input_file("--input", options.input, /*regular_only=*/false));
  SO_TRY(check_output_file("--output", options.output, /*read_back=*/true));
  if (same_file(options.input, options.output)) {
    return invalid_argument("--output '", options.output, "' is the input file; records would be appended to the "
                            "requests. Give another --output");
  }
  if (!options.errors.empty()) {
    SO_TRY(check_output_file("--errors", options.errors, /*read_back=*/true));
    if (same_file(options.input, options.errors)) {
      return invalid_argument("--errors '", options.errors, "' is the input file; give another --errors");
    }
    if (options.errors == options.output || same_file(options.errors, options.output)) {
      return invalid_argument("--errors '", options.errors, "' is the --output file; leave --errors out to write "
                              "error records into the output");
    }
  }
  if (!options.stats_json.empty()) SO_TRY(check_output_file("--stats-json", options.stats_json, false));
  return Status::Ok();
}

// An input line: its id and hash (for every line, so duplicates are found across shards),
// its text when this shard takes it.
struct InputLine {
  int64_t number = 0;
  std::string id;
  std::string hash;
  std::string text;
};

int run_batch(const RunOptions& options) {
  auto shard = parse_shard(options.shard);
  if (!shard.ok()) return report_error(shard.status());
  const auto [shard_index, shard_count] = *shard;
  auto engine_config = engine_options(options.model, options.batch, options.spec);
  if (!engine_config.ok()) return report_error(engine_config.status());
  if (Status s = check_run_paths(options); !s.ok()) return report_error(s);
  std::ifstream in(options.input, std::ios::binary);
  if (!in) return report_error(io_error("cannot open the input '", options.input, "'"));

  // Resume: what the outputs already hold (each checked to be this tool's records first; a
  // torn last record is then cut off).
  BatchDone done;
  if (Status s = recover_batch_output(options.output, done); !s.ok()) return report_error(s);
  if (!options.errors.empty()) {
    if (Status s = recover_batch_output(options.errors, done); !s.ok()) return report_error(s);
  }

  // Every line's id, so a custom_id used twice is one request in every shard; the lines of
  // this shard with their text.
  std::vector<InputLine> lines;
  std::unordered_map<std::string, int64_t> first_line_of;
  std::vector<std::pair<int64_t, int64_t>> duplicates;  // (line, first line of its id)
  std::string text;
  for (int64_t number = 1; std::getline(in, text); ++number) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    std::string id = batch_line_id(text, number);
    // note: a line naming another line's automatic id is refused on its own (parse_batch_line),
    // so it takes no id from the line without one.
    const bool takes_id = !is_reserved_batch_id(id) || id == str_cat("line-", number);
    const auto [first, inserted] = takes_id ? first_line_of.try_emplace(id, number) : std::pair{first_line_of.end(), true};
    if (number % shard_count != shard_index) continue;
    if (!inserted) duplicates.push_back({number, first->second});
    lines.push_back({number, std::move(id), batch_line_hash(text), text});
  }
  if (in.bad()) return report_error(io_error("reading the input '", options.input, "' failed"));

  // Lines already done are skipped; a custom_id whose records are for another request means
  // the input changed since the job began: nothing runs.
  std::vector<InputLine> todo;
  int64_t skipped = 0;
  for (InputLine& line : lines) {
    if (done.claim(line.id, line.hash)) {
      ++skipped;
    } else if (done.ids.count(line.id) > 0) {
      return report_error(invalid_argument(
          "line ", line.number, " (custom_id '", line.id, "'): the outputs hold a record for this id from another "
          "request, so the input changed since the job began; nothing was run. Restore the input, or give a new "
          "--output to run the edited input from the start"));
    } else {
      todo.push_back(std::move(line));
    }
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
  auto defaults_or = sampling_params(options.sampling);
  if (!defaults_or.ok()) return report_error(defaults_or.status());
  const SamplingParams defaults = *defaults_or;
  if (Status valid = defaults.validate(); !valid.ok()) return report_error(valid);
  const Tokenizer& tokenizer = engine.tokenizer();
  const std::string model_name = std::filesystem::path(engine_config->model_path).filename().string();

  Status write_failure = Status::Ok();
  int64_t errors = 0, completed = 0;
  auto write_error = [&](const InputLine& line, std::string_view code, const std::string& message) {
    Status s = error_writer.append(batch_error_record(line.number, line.id, line.hash, code, message));
    if (!s.ok() && write_failure.ok()) write_failure = s;
    ++errors;
  };

  std::vector<Pending> pending;
  std::vector<GenerationRequest> requests;
  for (const InputLine& line : todo) {
    auto request = parse_batch_line(line.text, line.number);
    if (!request.ok()) {
      write_error(line, "invalid_request", request.status().message());
      continue;
    }
    const auto duplicate = std::find_if(duplicates.begin(), duplicates.end(),
                                        [&](const auto& d) { return d.first == line.number; });
    if (duplicate != duplicates.end()) {
      write_error(line, "duplicate_custom_id",
                  str_cat("line ", line.number, ": custom_id '", line.id, "' was already used on line ",
                          duplicate->second, "; every request needs its own id"));
      continue;
    }
    auto prompt_tokens = api_prompt_tokens(engine, request->api, options.chat_template);
    if (!prompt_tokens.ok()) {
      write_error(line, "invalid_request", str_cat("line ", line.number, ": ", prompt_tokens.status().message()));
      continue;
    }
    GenerationRequest generation;
    generation.prompt_tokens = std::move(prompt_tokens).value();
    generation.max_tokens = request->api.max_tokens.value_or(options.max_tokens);
    generation.sampling = api_sampling(defaults, request->api);
    generation.ignore_eos = options.ignore_eos;
    generation.stop = request->api.stop;
    generation.stream_id = uint64_t(line.number);  // stable across restarts and shards
    if (Status valid = generation.sampling.validate(); !valid.ok()) {
      write_error(line, "invalid_request", str_cat("line ", line.number, ": ", valid.message()));
      continue;
    }
    pending.push_back({std::move(request).value(), int64_t(generation.prompt_tokens.size())});
    requests.push_back(std::move(generation));
  }
  const int64_t n_lines = int64_t(lines.size());

  const bool live = options.progress == "bar" || (options.progress == "auto" && ::isatty(STDERR_FILENO));
  Progress progress(n_lines, options.progress == "off" ? Progress::Mode::kOff
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
      s = error_writer.append(batch_error_record(request.line, request.custom_id, request.input_hash, "request_failed",
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
      {"lines", n_lines},
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
