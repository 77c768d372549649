// specoffload generate: text for one prompt or a file of prompts (one batch).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/file_checks.h"
#include "commands.h"
#include "runtime/chat_prompt.h"
#include "options.h"
#include "tokenizer/chat_template.h"

namespace so::cli {
namespace {

struct GenerateOptions {
  ModelOptions model;
  BatchOptions batch;
  SamplingOptions sampling;
  SpecCliOptions spec;
  std::string prompt;
  std::string prompt_file;
  int max_tokens = 128;
  bool chat = false;
  std::string chat_template;
  std::string system;
  bool json = false;
  bool ignore_eos = false;
  bool escape = false;
  std::string stats_json;
  std::string trace;
  std::string profile;
  double alpha = 0.5;
};

Result<std::vector<std::string>> read_prompts(const GenerateOptions& options) {
  if (!options.prompt_file.empty()) {
    std::ifstream in(options.prompt_file);
    if (!in) return io_error("cannot open prompt file '", options.prompt_file, "'");
    std::vector<std::string> prompts;
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) prompts.push_back(line);
    }
    if (prompts.empty()) return invalid_argument("prompt file '", options.prompt_file, "' has no non-empty lines");
    return prompts;
  }
  return std::vector<std::string>{options.prompt};
}

// The job's shape: prompts, their mean and longest length in tokens (a chat template adds a
// few), and tokens to generate.
Result<Workload> workload_of(const GenerateOptions& options, const std::vector<std::string>& prompts,
                             const EngineOptions& engine_config, int& longest_prompt) {
  SO_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                      load_tokenizer(engine_config.model_path, engine_config.load_format.dummy));
  const int template_tokens = options.chat ? 16 : 0;
  int64_t total = 0;
  longest_prompt = 0;
  for (const std::string& prompt : prompts) {
    const int n = static_cast<int>(tokenizer->encode(prompt, true, true).size()) + template_tokens;
    total += n;
    longest_prompt = std::max(longest_prompt, n);
  }
  return Workload{int(prompts.size()), int(total / int64_t(prompts.size())), std::max(1, options.max_tokens)};
}

// With --profile, the planner picks rows, draft length and sub-batch, schedule, ring depth,
// KV placement and step size for this job (flags the user gave keep their values); the
// plan goes to stderr, and a replanner revisits it when the measured acceptance drifts from
// --alpha. Returns the plan as JSON ("" without --profile).
Result<std::string> apply_planner(const GenerateOptions& options, const PlanOverrides& given, const Workload& workload,
                                  EngineOptions& engine_config, std::unique_ptr<Replanner>& replanner) {
  if (options.profile.empty()) return std::string();
  SO_ASSIGN_OR_RETURN(HardwareProfile profile,
                      HardwareProfile::load(options.profile == "auto" ? default_profile_path() : options.profile));
  PlanRequest request;
  request.workload = workload;
  request.alpha = options.alpha;
  request.profile = profile;
  SO_ASSIGN_OR_RETURN(PlanInput input, plan_input_for(engine_config, request, given));
  SO_ASSIGN_OR_RETURN(Plan plan, make_plan(input));
  apply_plan(plan, given, engine_config);
  replanner = std::make_unique<Replanner>(std::move(input), plan);
  std::fprintf(stderr, "plan (from %s):\n%s", options.profile.c_str(), plan.describe().c_str());
  return plan.to_json();
}

Result<RenderedChat> apply_chat(const Engine& engine, const GenerateOptions& options, const std::string& prompt) {
  std::vector<ChatMessage> messages;
  if (!options.system.empty()) messages.push_back({"system", options.system});
  messages.push_back({"user", prompt});
  return render_chat_prompt(engine, messages, options.chat_template);
}

// Where the run writes, checked before it works: a wrong path fails now, not after the job.
Status check_generate_paths(const GenerateOptions& options) {
  if (!options.prompt_file.empty()) SO_TRY(check_input_file("--file", options.prompt_file, /*regular_only=*/false));
  if (!options.stats_json.empty()) SO_TRY(check_output_file("--stats-json", options.stats_json, /*read_back=*/false));
  if (!options.trace.empty()) SO_TRY(check_output_file("--trace", options.trace, /*read_back=*/false));
  return Status::Ok();
}

int run_generate(const GenerateOptions& options, const PlanOverrides& given) {
  if (Status paths = check_generate_paths(options); !paths.ok()) return report_error(paths);
  auto engine_config = engine_options(options.model, options.batch, options.spec);
  if (!engine_config.ok()) return report_error(engine_config.status());
  auto prompts = read_prompts(options);
  if (!prompts.ok()) return report_error(prompts.status());
  int longest_prompt = 0;
  auto workload = workload_of(options, *prompts, *engine_config, longest_prompt);
  if (!workload.ok()) return report_error(workload.status());
  const bool drafts = engine_config->spec.drafter != DrafterKind::kNone;
  engine_config->kv_positions_hint = int64_t(longest_prompt) + options.max_tokens + (drafts ? engine_config->spec.draft_max + 1 : 0);
  std::unique_ptr<Replanner> replanner;
  auto plan_json = apply_planner(options, given, *workload, *engine_config, replanner);
  if (!plan_json.ok()) return report_error(plan_json.status());
  engine_config->trace = !options.trace.empty();
  auto engine_or = Engine::create(*engine_config);
  if (!engine_or.ok()) return report_error(engine_or.status());
  Engine& engine = **engine_or;
  if (replanner) engine.set_replanner(std::move(replanner));

  auto sampling_or = sampling_params(options.sampling);
  if (!sampling_or.ok()) return report_error(sampling_or.status());
  const SamplingParams sampling = *sampling_or;
  if (Status valid = sampling.validate(); !valid.ok()) return report_error(valid);

  std::vector<GenerationRequest> requests;
  std::vector<std::string> texts;
  for (size_t i = 0; i < prompts->size(); ++i) {
    std::string text = options.escape ? process_escapes((*prompts)[i]) : (*prompts)[i];
    GenerationRequest request;
    if (options.chat) {
      auto rendered = apply_chat(engine, options, text);
      if (!rendered.ok()) return report_error(rendered.status());
      request.prompt_tokens = chat_prompt_tokens(engine, *rendered);
      text = std::move(rendered->text);
    } else {
      request.prompt_tokens =
          engine.tokenizer().encode(text, engine.tokenizer().add_bos_by_default(), /*parse_special=*/true);
    }
    request.max_tokens = options.max_tokens;
    request.sampling = sampling;
    request.ignore_eos = options.ignore_eos;
    request.stream_id = i;
    requests.push_back(std::move(request));
    texts.push_back(std::move(text));
  }

  // A single prompt streams its text as it is generated.
  const bool stream = requests.size() == 1 && !options.json;
  if (stream) {
    std::fwrite(texts[0].data(), 1, texts[0].size(), stdout);
    std::fflush(stdout);
  }
  TokenCallback on_token;
  if (stream) {
    on_token = [&](size_t, int32_t token) {
      const std::string piece = engine.tokenizer().token_to_piece(token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  const std::vector<GenerationResult> results = engine.generate(requests, on_token);
  const double finished_unix = unix_seconds_now();

  int exit_code = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const GenerationResult& result = results[i];
    const std::string completion = engine.tokenizer().decode(result.tokens);
    if (result.finish == FinishReason::kError) {
      std::fprintf(stderr, "error: prompt %zu: %s\n", i + 1, result.error.to_string().c_str());
      exit_code = 1;
    }
    if (options.json) {
      nlohmann::json record = {{"index", i},
                               {"prompt_tokens", requests[i].prompt_tokens},
                               {"tokens", result.tokens},
                               {"text", completion},
                               {"finish_reason", finish_reason_name(result.finish)},
                               {"seed", sampling.seed}};
      if (result.finish == FinishReason::kError) record["error"] = result.error.message();
      if (engine.options().spec.simulate_alpha >= 0) record["simulated_acceptance"] = engine.options().spec.simulate_alpha;
      if (!engine.drafter_name().empty()) {
        record["drafted_tokens"] = result.drafted_tokens;
        record["accepted_tokens"] = result.accepted_tokens;
      }
      std::cout << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else if (stream) {
      std::cout << "\n";
    } else {
      std::cout << texts[i] << completion << "\n\n";
    }
  }
  std::cout.flush();
  const std::string drafter = engine.drafter_name().empty() ? "" : str_cat(" | drafter ", engine.drafter_name());
  const double simulated = engine.options().spec.simulate_alpha;
  const std::string simulation =
      simulated >= 0 ? str_cat(" | SIMULATED ACCEPTANCE alpha=", simulated, " (dummy weights)") : std::string();
  std::fprintf(stderr, "%s | %s%s | seed %llu%s\n", engine.stats().summary_line().c_str(), engine.backend_name().c_str(),
               drafter.c_str(), static_cast<unsigned long long>(sampling.seed), simulation.c_str());
  if (!options.stats_json.empty()) {
    if (Status written = write_stats_json(engine, options.stats_json, finished_unix, *plan_json); !written.ok()) {
      return report_error(written);
    }
  }
  if (!options.trace.empty()) {
    if (Status written = engine.write_trace(options.trace); !written.ok()) return report_error(written);
  }
  return exit_code;
}

}  // namespace

Command register_generate(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* command = app.add_subcommand("generate", "generate text for a prompt or a file of prompts (one batch)");
  add_model_options(*command, options->model);
  add_batch_options(*command, options->batch);
  add_sampling_options(*command, options->sampling);
  add_spec_options(*command, options->spec);
  auto* prompt = command->add_option("-p,--prompt", options->prompt, "prompt text");
  auto* file = command->add_option("-f,--file", options->prompt_file, "file with one prompt per line, run as one batch");
  prompt->excludes(file);
  command->add_option("-n,--max-tokens", options->max_tokens, "tokens to generate per prompt")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  command->add_flag("--chat", options->chat, "wrap each prompt as a user message in the model's chat template");
  command->add_option("--chat-template", options->chat_template, "force a template: chatml, llama2, mistral, llama3");
  command->add_option("--system", options->system, "system message for --chat");
  command->add_flag("--json", options->json, "one JSON object per prompt: prompt_tokens, tokens, text, finish_reason");
  command->add_flag("-e,--escape", options->escape, "read \\n, \\t, \\\\ ... in prompts as escapes (multi-line prompts in -f files)");
  command->add_flag("--ignore-eos", options->ignore_eos, "keep generating past end-of-generation tokens");
  command->add_option("--stats-json", options->stats_json,
                      "write the run's stats (tokens, seconds, bytes) and per-pass records as JSON");
  command->add_option("--trace", options->trace,
                      "write a per-pass timeline (Chrome trace-event JSON: chrome://tracing or Perfetto)");
  command->add_option("--profile", options->profile,
                      "plan rows, draft length and sub-batch, schedule, ring depth, KV placement and step size from "
                      "this hardware profile ('auto': the cache's); flags given keep their values");
  command->add_option("--alpha", options->alpha, "with --profile: the acceptance estimate to plan for")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  return {command, [options, command] {
            if (options->prompt.empty() && options->prompt_file.empty()) {
              return report_error(invalid_argument("give a prompt with -p TEXT or a prompt file with -f FILE"));
            }
            return run_generate(*options, given_overrides(*command));
          }};
}

}  // namespace so::cli
