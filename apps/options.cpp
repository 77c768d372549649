#include "options.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "base/log.h"

namespace so::cli {

void add_model_options(CLI::App& command, ModelOptions& options) {
  command.add_option("-m,--model", options.model,
                     "GGUF file, Hugging Face model directory, or 'default' (the model scripts/setup.sh fetched)")
      ->required();
  command.add_option("-t,--threads", options.n_threads, "compute threads (default: one per physical core)")
      ->check(CLI::Range(0, 1024));
  command.add_option("--backend", options.backend,
                     "cpu, cuda, or auto: CUDA when a GPU is found (default: $SPECOFFLOAD_BACKEND, else auto)");
  command.add_option("--gpu-mem", options.gpu_mem,
                     "device memory the run may use in all, e.g. 24G, so a large card acts as a small one (default: "
                     "what is free); on the CPU backend it caps the simulated device's arena (default: no cap)");
  command.add_option("--load-format", options.load_format,
                     "auto: read the model file; dummy: random weights of real shapes from a config.json (-m names the "
                     "config or its directory, e.g. configs/mixtral-8x7b), for throughput at scale")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "dummy"}));
  command.add_option("--dummy-type", options.dummy_type,
                     "with --load-format dummy: the matrices' type instead of the config's torch_dtype, e.g. Q4_K for "
                     "the bytes a quantized file of the model streams (norms stay F32; matrices whose rows are not "
                     "whole blocks take Q8_0, as llama.cpp's quantizer does)");
  command.add_flag("-v,--verbose", options.verbose,
                   "log on stderr as it happens: loading, placing the weights, then one line per pass (rows, tokens, "
                   "time and where it went), so a long run shows where it is");
  command.add_option("--mmap", options.mmap,
                     "on: map the model files (fast to start, pages shared with the page cache); off: read them into "
                     "private memory, so a file truncated or replaced under a running process cannot kill it; auto: "
                     "off for serve, on otherwise")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
}

Result<BackendKind> backend_kind(const ModelOptions& options) {
  std::string text = options.backend;
  if (text.empty()) {
    const char* env = std::getenv("SPECOFFLOAD_BACKEND");
    text = env && *env ? env : "auto";
  }
  return parse_backend_kind(text);
}

void add_batch_options(CLI::App& command, BatchOptions& options) {
  command.add_option("--max-rows", options.max_rows, "sequences generating at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  command.add_option("--step-tokens", options.max_step_tokens, "tokens per forward step (prefill chunk budget)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  command.add_option("--micro-batch", options.micro_batch_tokens,
                     "tokens a layer computes at once; a step of more (a large --step-tokens) runs each layer over "
                     "micro-batches, so a streamed layer is loaded once for the whole step (layer-major prefill)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  command.add_option("--kv-mem", options.kv_budget, "KV cache budget, e.g. 4G (default: no cap)");
  command.add_option("--device-mem", options.device_mem,
                     "device memory for the target's weights, e.g. 24G; layers beyond it stream from host memory");
  command.add_option("--kv-page-tokens", options.kv_page_tokens, "positions per KV cache page")
      ->capture_default_str()
      ->check(CLI::Range(16, 4096));
  command.add_option("--kv-cache", options.kv_cache,
                     "where the target's KV cache lives: device; host (pinned host memory, attention on CPU threads, "
                     "so rows are not bounded by device memory); auto: the plan's choice with --profile, else the "
                     "device when its memory holds --max-rows rows")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "device", "host"}));
  command.add_option("--ring-slots", options.ring_slots, "device slots streamed layers rotate through")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  command.add_option("--sim-link-gbps", options.sim_link_gbps,
                     "CPU backend: throttle host-to-device copies to this many GB/s (to study PCIe-like links)")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--host-mem", options.host_mem,
                     "pinned host memory for streamed layers, e.g. 64G; layers beyond it stay in the model file and "
                     "are read ahead from disk (the disk tier)");
  command.add_option("--staging-slots", options.staging_slots, "disk tier: layers read ahead into host memory")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  command.add_option("--sim-disk-gbps", options.sim_disk_gbps, "disk tier: throttle reads to this many GB/s")
      ->check(CLI::NonNegativeNumber);
}

void add_sampling_options(CLI::App& command, SamplingOptions& options) {
  command.add_option("--temp", options.temperature, "temperature; 0 is greedy")->capture_default_str();
  command.add_option("--top-k", options.top_k, "keep the k most likely tokens; 0 is off")->capture_default_str();
  command.add_option("--top-p", options.top_p, "nucleus mass; 1 is off")->capture_default_str();
  command.add_option("--min-p", options.min_p, "drop tokens below min-p times the top one; 0 is off")
      ->capture_default_str();
  command.add_option("--seed", options.seed, "sampling seed, 0 to 2^64 - 1 (default: random, printed)");
}

void add_spec_options(CLI::App& command, SpecCliOptions& options) {
  auto* model = command.add_option("--draft-model", options.draft_model,
                                   "speculative decoding with this draft model (same vocabulary as the target); also -md");
  auto* layers = command.add_option("--draft-layers", options.draft_layers,
                                    "speculative decoding with the target's first N layers as the draft");
  auto* ngram = command.add_flag("--draft-ngram", options.draft_ngram,
                                 "speculative decoding with n-gram lookup in the row's prompt and output");
  model->excludes(layers)->excludes(ngram);
  layers->excludes(ngram);
  command.add_option("--draft-max", options.draft_max, "tokens drafted per row per pass (the cap when adaptive); 0 is off")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  command.add_option("--draft-length", options.draft_length,
                     "fixed: always --draft-max; adaptive: per row, from its recent acceptance and measured costs")
      ->capture_default_str()
      ->check(CLI::IsMember({"fixed", "adaptive"}));
  command.add_option("--draft-context", options.draft_context,
                     "a draft model reads only the last N tokens of each prompt (bounds its prefill on long prompts; "
                     "output unchanged, acceptance may drop); 0 is the whole prompt")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command.add_option("--draft-subbatch", options.draft_subbatch,
                     "rows the drafter proposes for at once (bounds its activations at large batches); 0 is all of "
                     "a pass's rows")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command.add_option("--simulate-acceptance", options.simulate_acceptance,
                     "dummy weights only: draw each row's accepted drafts from the acceptance law with this alpha "
                     "after a real verification pass (outputs then say 'simulated acceptance')")
      ->check(CLI::Range(0.0, 1.0));
  command.add_option("--schedule", options.schedule,
                     "serial: draft for every row, then verify them all; interleaved: two half-batches, the draft "
                     "drafting for one while the target verifies the other")
      ->capture_default_str()
      ->check(CLI::IsMember({"serial", "interleaved"}));
}

std::string cache_directory() {
  if (const char* dir = std::getenv("SPECOFFLOAD_CACHE"); dir && *dir) return dir;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/specoffload";
}

std::string resolve_model_path(const std::string& model) {
  if (model != "default") return model;
  if (const char* path = std::getenv("SPECOFFLOAD_DEFAULT_MODEL"); path && *path) return path;
  return cache_directory() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string default_profile_path() { return cache_directory() + "/profile.json"; }

Result<int64_t> parse_size_flag(std::string_view flag, const std::string& text, std::string_view example,
                                bool allow_zero) {
  const std::optional<uint64_t> bytes = parse_byte_size(text);
  if (!bytes || (*bytes == 0 && !allow_zero)) {
    return invalid_argument(flag, " ", quote_for_message(text),
                            " is not a size; expected bytes with an optional K/M/G/T suffix, e.g. ", example);
  }
  return static_cast<int64_t>(*bytes);
}

Result<EngineOptions> engine_options(const ModelOptions& model, const BatchOptions& batch,
                                     const SpecCliOptions& spec, bool mmap_by_default) {
  EngineOptions options;
  // note: the disk tier reads from the file when a pass needs it; copying it all first
  // would defeat it, so --host-mem keeps the mapping.
  const bool mapped = model.mmap == "on" || (model.mmap == "auto" && (mmap_by_default || !batch.host_mem.empty()));
  options.map_mode = mapped ? MapMode::kMapped : MapMode::kCopied;
  options.spec.draft_max = spec.draft_max;
  options.spec.adaptive = spec.draft_length == "adaptive";
  options.spec.draft_context = spec.draft_context;
  options.spec.draft_subbatch = spec.draft_subbatch;
  options.spec.simulate_alpha = spec.simulate_acceptance;
  options.schedule = spec.schedule == "interleaved" ? Schedule::kInterleaved : Schedule::kSerial;
  options.load_format.dummy = model.load_format == "dummy";
  // note: --verbose is the info log level (SPECOFFLOAD_LOG=info): the engine's phases and passes log there.
  if (model.verbose && log_level() < LogLevel::kInfo) set_log_level(LogLevel::kInfo);
  if (!model.dummy_type.empty()) {
    if (!options.load_format.dummy) {
      return invalid_argument("--dummy-type ", quote_for_message(model.dummy_type),
                              " needs --load-format dummy (a model file keeps the types it was written in)");
    }
    SO_ASSIGN_OR_RETURN(options.load_format.dummy_dtype, dummy_weight_dtype(model.dummy_type));
  }
  if (!spec.draft_model.empty()) {
    options.spec.drafter = DrafterKind::kDraftModel;
    options.spec.draft_model_path = resolve_model_path(spec.draft_model);
  } else if (spec.draft_layers != 0) {
    options.spec.drafter = DrafterKind::kSelfDraft;
    options.spec.draft_layers = spec.draft_layers;
  } else if (spec.draft_ngram) {
    options.spec.drafter = DrafterKind::kNgram;
  }
  options.model_path = resolve_model_path(model.model);
  options.n_threads = model.n_threads;
  SO_ASSIGN_OR_RETURN(options.backend, backend_kind(model));
  if (!model.gpu_mem.empty()) {
    SO_ASSIGN_OR_RETURN(options.gpu_memory_bytes, parse_size_flag("--gpu-mem", model.gpu_mem, "24G"));
  }
  options.max_rows = batch.max_rows;
  options.max_step_tokens = batch.max_step_tokens;
  options.micro_batch_tokens = batch.micro_batch_tokens;
  if (!batch.kv_budget.empty()) {
    SO_ASSIGN_OR_RETURN(options.kv_budget_bytes, parse_size_flag("--kv-mem", batch.kv_budget, "4G", /*allow_zero=*/true));
  }
  if (!batch.device_mem.empty()) {
    SO_ASSIGN_OR_RETURN(options.offload.device_budget_bytes, parse_size_flag("--device-mem", batch.device_mem, "24G"));
  }
  options.offload.ring_slots = batch.ring_slots;
  options.kv_page_tokens = batch.kv_page_tokens;
  options.kv_cache = batch.kv_cache == "host"     ? KvCacheChoice::kHost
                     : batch.kv_cache == "device" ? KvCacheChoice::kDevice
                                                  : KvCacheChoice::kAuto;
  options.offload.sim_link_gbps = batch.sim_link_gbps;
  if (!batch.host_mem.empty()) {
    SO_ASSIGN_OR_RETURN(options.offload.host_budget_bytes, parse_size_flag("--host-mem", batch.host_mem, "64G"));
  }
  options.offload.staging_slots = batch.staging_slots;
  options.offload.sim_disk_gbps = batch.sim_disk_gbps;
  return options;
}

Result<SamplingParams> sampling_params(const SamplingOptions& options) {
  SamplingParams params;
  params.temperature = options.temperature;
  params.top_k = options.top_k;
  params.top_p = options.top_p;
  params.min_p = options.min_p;
  if (options.seed.empty()) {
    params.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
    return params;
  }
  const char* end = options.seed.data() + options.seed.size();
  const auto [stop, error] = std::from_chars(options.seed.data(), end, params.seed);
  if (error != std::errc() || stop != end) {
    return invalid_argument("--seed ", quote_for_message(options.seed),
                            " is not a seed; expected an integer from 0 to 18446744073709551615 (leave --seed out for "
                            "a random one)");
  }
  return params;
}

PlanOverrides given_overrides(const CLI::App& command) {
  PlanOverrides given;
  given.max_rows = command.count("--max-rows") > 0;
  given.draft_max = command.count("--draft-max") > 0;
  given.ring_slots = command.count("--ring-slots") > 0;
  given.schedule = command.count("--schedule") > 0;
  given.kv_cache = command.count("--kv-cache") > 0;
  given.step_tokens = command.count("--step-tokens") > 0;
  given.draft_subbatch = command.count("--draft-subbatch") > 0;
  return given;
}

Status write_stats_json(const Engine& engine, const std::string& path, double finished_unix_seconds,
                        const std::string& predicted_plan_json) {
  nlohmann::ordered_json stats = nlohmann::ordered_json::parse(engine.stats().to_json());
  stats["backend"] = engine.backend_name();
  stats["generate_finished_unix_seconds"] = finished_unix_seconds;
  stats["dummy_weights"] = engine.options().load_format.dummy;
  if (const auto dtype = engine.options().load_format.dummy_dtype) stats["dummy_type"] = dtype_name(*dtype);
  if (engine.options().spec.simulate_alpha >= 0) stats["simulated_acceptance"] = engine.options().spec.simulate_alpha;
  stats["memory"] = nlohmann::ordered_json::parse(engine.memory_json());
  stats["applied_plan"] = nlohmann::ordered_json::parse(engine.applied_plan_json());
  if (!predicted_plan_json.empty()) stats["plan"] = nlohmann::ordered_json::parse(predicted_plan_json);
  stats["pass_records"] = nlohmann::ordered_json::parse(engine.pass_log().records_json());
  std::ofstream out(path);
  out << stats.dump() << "\n";
  if (!out) return io_error("cannot write '", path, "'");
  return Status::Ok();
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int report_error(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.to_string().c_str());
  return 1;
}

}  // namespace so::cli
