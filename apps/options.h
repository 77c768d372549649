// Option groups shared by subcommands, declared once (CLI11 is the option table).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "runtime/engine.h"
#include "runtime/plan_setup.h"

namespace so::cli {

struct ModelOptions {
  std::string model;  // GGUF file, HF directory, or "default"
  int n_threads = 0;
  std::string backend;  // cpu | cuda | auto; empty: $SPECOFFLOAD_BACKEND, else auto
  std::string gpu_mem;  // hard cap on device memory, "24G"; empty: what is free (CUDA), no cap (CPU)
  std::string load_format = "auto";  // auto | dummy
  bool verbose = false;              // -v: loading phases and each pass on stderr as they happen
  std::string dummy_type;            // --dummy-type: the dummy matrices' GGUF type; "": the config's torch_dtype
  std::string mmap = "auto";         // on | off | auto (serve: off, others: on)
};

struct BatchOptions {
  int max_rows = 32;
  int max_step_tokens = 512;
  int micro_batch_tokens = 512;
  std::string kv_budget;  // "4G"; empty: no cap
  std::string device_mem;  // weights' device budget, "24G"; empty: all resident
  int ring_slots = 2;
  double sim_link_gbps = 0.0;
  int kv_page_tokens = 256;
  std::string kv_cache = "auto";  // device | host | auto
  std::string host_mem;  // pinned host memory for streamed layers, "64G"; empty: all of them
  int staging_slots = 3;
  double sim_disk_gbps = 0.0;
};

struct SpecCliOptions {
  std::string draft_model;  // -md
  int draft_layers = 0;     // self-draft
  bool draft_ngram = false;
  int draft_max = 6;
  std::string draft_length = "adaptive";  // fixed | adaptive
  int draft_context = 0;                  // draft model: last N prompt tokens; 0: the whole prompt
  int draft_subbatch = 0;                 // rows drafted for at once; 0: all of a pass's rows
  double simulate_acceptance = -1.0;      // dummy weights only
  std::string schedule = "serial";        // serial | interleaved
};

struct SamplingOptions {
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  std::string seed;  // empty: random, printed so the run can be repeated
};

void add_model_options(CLI::App& command, ModelOptions& options);
// --backend, or $SPECOFFLOAD_BACKEND, or auto.
Result<BackendKind> backend_kind(const ModelOptions& options);
void add_batch_options(CLI::App& command, BatchOptions& options);
void add_sampling_options(CLI::App& command, SamplingOptions& options);
void add_spec_options(CLI::App& command, SpecCliOptions& options);

// "default" -> the model scripts/setup.sh fetched ($SPECOFFLOAD_DEFAULT_MODEL, else the cache).
std::string resolve_model_path(const std::string& model);
// Where `profile` writes and `plan`/`generate --profile auto` read: the cache's profile.json.
std::string default_profile_path();
// mmap_by_default: what --mmap auto means for the command (a server copies the weights).
Result<EngineOptions> engine_options(const ModelOptions& model, const BatchOptions& batch,
                                     const SpecCliOptions& spec = {}, bool mmap_by_default = true);
// The sampling flags, or an error naming a --seed that is not an integer from 0 to 2^64 - 1.
Result<SamplingParams> sampling_params(const SamplingOptions& options);

// "24G" for a byte-size flag, or an error naming the flag and showing `example`.
Result<int64_t> parse_size_flag(std::string_view flag, const std::string& text, std::string_view example,
                                bool allow_zero = false);

// The plan-setting options the user gave on the command line (they override the plan).
PlanOverrides given_overrides(const CLI::App& command);

// --stats-json: the engine's stats (tokens, seconds, bytes), memory, the choices it ran with
// (applied_plan), the planner's plan when one was made, and per-pass records, with the
// moment generation finished (aligns outside samplers with the passes).
Status write_stats_json(const Engine& engine, const std::string& path, double finished_unix_seconds,
                        const std::string& predicted_plan_json = {});
// Seconds since the epoch, for write_stats_json.
double unix_seconds_now();

// Prints "error: ..." to stderr; returns the exit code for it.
int report_error(const Status& status);

}  // namespace so::cli
