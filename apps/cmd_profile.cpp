// specoffload profile: measure the machine for the planner.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "commands.h"
#include "options.h"
#include "runtime/profile_machine.h"
#include "runtime/step_calibration.h"

namespace so::cli {
namespace {

struct ProfileCliOptions {
  std::string output;
  std::string disk_file;
  int n_threads = 0;
  double sim_link_gbps = 0.0;
  double seconds = 0.25;
  std::string backend;  // cpu | cuda | auto; empty: $SPECOFFLOAD_BACKEND, else auto
  std::vector<std::string> models;  // measure these models' steps too
};

int run_profile(const ProfileCliOptions& options) {
  ModelOptions model_options;
  model_options.backend = options.backend;
  auto kind = backend_kind(model_options);
  if (!kind.ok()) return report_error(kind.status());
  BackendOptions backend_options;
  backend_options.kind = *kind;
  backend_options.n_threads = options.n_threads;
  backend_options.sim_link_gbps = options.sim_link_gbps;
  auto created = create_backend(backend_options);
  if (!created.ok()) return report_error(created.status());
  Backend& backend = **created;
  ProfileOptions profile_options;
  profile_options.disk_file = options.disk_file.empty() ? "" : resolve_model_path(options.disk_file);
  profile_options.seconds_per_measure = options.seconds;
  auto profile = profile_machine(backend, profile_options);
  if (!profile.ok()) return report_error(profile.status());
  if (const auto* cpu = dynamic_cast<const CpuBackend*>(&backend)) profile->n_threads = cpu->n_threads();
  for (const std::string& name : options.models) {
    EngineOptions engine_options;
    engine_options.model_path = resolve_model_path(name);
    engine_options.backend = *kind;
    engine_options.n_threads = options.n_threads;
    auto cost = measure_step_cost(engine_options, options.seconds);
    if (!cost.ok()) return report_error(cost.status().with_context(str_cat("measuring the steps of '", name, "'")));
    profile->models[model_key(engine_options.model_path)] = *cost;
    std::fprintf(stderr, "%s: verification step of 1 / 16 / 256 tokens %.2f / %.2f / %.2f ms, prefill of 1024 %.2f ms\n",
                 name.c_str(), cost->seconds(1, 1) * 1e3, cost->seconds(16, 16) * 1e3, cost->seconds(256, 256) * 1e3,
                 cost->seconds(1024, 1) * 1e3);
  }
  const std::string path = options.output.empty() ? default_profile_path() : options.output;
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ignored);
  std::ofstream out(path);
  out << profile->to_json() << "\n";
  if (!out) return report_error(io_error("cannot write the profile '", path, "'"));
  std::printf("%s\n", profile->to_json().c_str());
  std::fprintf(stderr, "profile written to %s\n", path.c_str());
  return 0;
}

}  // namespace

Command register_profile(CLI::App& app) {
  auto options = std::make_shared<ProfileCliOptions>();
  CLI::App* command = app.add_subcommand("profile", "measure the machine (link, disk, matmul, attention) for the planner");
  command->add_option("-o,--output", options->output, "profile JSON to write (default: the cache's profile.json)");
  command->add_option("--disk-file", options->disk_file, "a file to read cold for the disk tier's bandwidth (e.g. the model)");
  command->add_option("-t,--threads", options->n_threads, "compute threads (default: one per physical core)")
      ->check(CLI::Range(0, 1024));
  command->add_option("--sim-link-gbps", options->sim_link_gbps, "CPU backend: the simulated host-to-device link")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--seconds", options->seconds, "time per measurement")->check(CLI::Range(0.01, 60.0));
  command->add_option("--backend", options->backend, "cpu, cuda or auto (default: $SPECOFFLOAD_BACKEND, else auto)");
  command->add_option("-m,--model", options->models,
                      "also time forward steps of this model (repeatable: the target and the draft), so the planner "
                      "predicts its compute from real steps");
  return {command, [options] { return run_profile(*options); }};
}

}  // namespace so::cli
