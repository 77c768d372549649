// specoffload plan: the planner's choice for a model, machine, workload and budgets.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "options.h"
#include "runtime/plan_setup.h"

namespace so::cli {
namespace {

struct PlanCliOptions {
  ModelOptions model;
  BatchOptions batch;
  SpecCliOptions spec;
  std::string profile;
  int n_prompts = 64;
  int prompt_tokens = 256;
  int gen_tokens = 128;
  double alpha = 0.6;
  bool json = false;
};

int run_plan(const PlanCliOptions& options, const PlanOverrides& given) {
  auto engine_config = engine_options(options.model, options.batch, options.spec);
  if (!engine_config.ok()) return report_error(engine_config.status());
  const std::string profile_path = options.profile.empty() ? default_profile_path() : options.profile;
  auto profile = HardwareProfile::load(profile_path);
  if (!profile.ok()) return report_error(profile.status());
  PlanRequest request;
  request.workload = {options.n_prompts, options.prompt_tokens, options.gen_tokens};
  request.alpha = options.alpha;
  request.profile = *profile;
  request.host_budget_bytes = engine_config->offload.host_budget_bytes;
  auto plan = plan_for(*engine_config, request, given);
  if (!plan.ok()) return report_error(plan.status());
  if (options.json) {
    std::printf("%s\n", plan->to_json().c_str());
  } else {
    std::printf("%s", plan->describe().c_str());
  }
  return 0;
}

}  // namespace

Command register_plan(CLI::App& app) {
  auto options = std::make_shared<PlanCliOptions>();
  CLI::App* command = app.add_subcommand("plan", "print the planner's choice: rows, draft length, placement, predicted tokens/s");
  add_model_options(*command, options->model);
  add_batch_options(*command, options->batch);
  add_spec_options(*command, options->spec);
  command->add_option("--profile", options->profile, "hardware profile from `specoffload profile` (default: the cache's)");
  command->add_option("--prompts", options->n_prompts, "prompts in the job")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  command->add_option("--prompt-tokens", options->prompt_tokens, "mean prompt length")->capture_default_str()->check(CLI::Range(1, 1 << 24));
  command->add_option("--gen-tokens", options->gen_tokens, "tokens generated per prompt")->capture_default_str()->check(CLI::Range(1, 1 << 24));
  command->add_option("--alpha", options->alpha, "acceptance estimate per drafted token")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  command->add_flag("--json", options->json, "print the plan as JSON");
  return {command, [options, command] { return run_plan(*options, given_overrides(*command)); }};
}

}  // namespace so::cli
