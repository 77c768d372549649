#include "runtime/engine.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "backend/backend_factory.h"
#include "base/log.h"
#include "base/timer.h"
#include "offload/layer_slab.h"
#include "runtime/drafter_setup.h"
#include "runtime/dummy_model.h"
#include "runtime/kv_placement.h"

namespace so {

Engine::~Engine() = default;

Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& model_path, bool dummy) {
  if (dummy) return dummy_tokenizer_of_config(model_path);
  SO_ASSIGN_OR_RETURN(ModelFile file, open_model_file(model_path));
  auto tokenizer = Tokenizer::from_model_file(file);
  if (!tokenizer.ok()) return tokenizer.status().with_context(str_cat("loading the tokenizer of '", model_path, "'"));
  return tokenizer;
}

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  if (options.max_rows < 1) return invalid_argument("max rows ", options.max_rows, " must be at least 1");
  if (options.max_step_tokens < 1) {
    return invalid_argument("max step tokens ", options.max_step_tokens, " must be at least 1");
  }
  std::unique_ptr<Engine> engine(new Engine());
  engine->options_ = options;
  if (options.spec.simulate_alpha >= 0 && !options.load_format.dummy) {
    return invalid_argument("--simulate-acceptance replaces real verification outcomes, so it is refused with real "
                            "weights; it exists for --load-format dummy (throughput at scale)");
  }
  if (options.spec.simulate_alpha > 1.0) {
    return invalid_argument("--simulate-acceptance ", options.spec.simulate_alpha, " is not a probability in [0, 1]");
  }
  // note: each phase logs as it ends (--verbose): loading tens of GB into pinned memory takes a while.
  SO_LOG(Info, "loading '", options.model_path, "'", options.load_format.dummy ? " (dummy weights)" : "");
  SO_ASSIGN_OR_RETURN(engine->model_, load_model_as(options.model_path, options.load_format, options.map_mode));
  SO_LOG(Info, "loaded: ", architecture_name(engine->model_->config.arch), ", ", engine->model_->config.n_layers,
           " layers, ", format_bytes(double(engine->model_->file.tensors.total_bytes())), " of tensors");
  auto tokenizer = tokenizer_of(*engine->model_, options.load_format.dummy);
  if (!tokenizer.ok()) return tokenizer.status().with_context(str_cat("loading the tokenizer of '", options.model_path, "'"));
  engine->tokenizer_ = std::move(tokenizer).value();
  if (engine->tokenizer_->n_vocab() > engine->model_->config.n_vocab) {
    return format_error("the tokenizer has ", engine->tokenizer_->n_vocab(), " tokens but the model's embedding has ",
                        engine->model_->config.n_vocab, " rows; the file is inconsistent");
  }
  BackendOptions backend_options;
  backend_options.kind = options.backend;
  backend_options.n_threads = options.n_threads;
  backend_options.sim_link_gbps = options.offload.sim_link_gbps;
  backend_options.gpu_memory_bytes = options.gpu_memory_bytes;
  SO_ASSIGN_OR_RETURN(engine->backend_, create_backend(backend_options));
  Backend& backend = *engine->backend_;
  engine->runner_ = std::make_unique<ModelRunner>(*engine->model_, backend);
  engine->runner_->set_micro_batch_tokens(options.micro_batch_tokens);
  // The draft first: it is resident, and the target streams through what is left.
  SO_ASSIGN_OR_RETURN(DrafterSetup drafter, create_drafter(options, *engine->model_, *engine->tokenizer_, backend));
  engine->draft_model_ = std::move(drafter.draft_model);
  engine->drafter_ = std::move(drafter.drafter);
  if (engine->drafter_) SO_LOG(Info, "drafter ready: ", engine->drafter_->name());
  if (options.offload.host_budget_bytes > 0 && options.offload.device_budget_bytes == 0 && backend.reads_host_memory()) {
    return invalid_argument("--host-mem places the layers that stream to device memory, but nothing streams: give "
                            "--device-mem too (e.g. --device-mem 1G --host-mem 4G)");
  }
  SO_ASSIGN_OR_RETURN(const KvPlacement kv_placement,
                      resolve_kv_placement(options, *engine->model_, engine->draft_model_.get(), backend));
  SO_ASSIGN_OR_RETURN(const int64_t weights_budget,
                      target_weights_budget(options, *engine->model_, backend, kv_placement));
  if (weights_budget > 0) {
    LayerStreamerOptions streamer_options{weights_budget, options.offload.ring_slots};
    streamer_options.host_budget_bytes = options.offload.host_budget_bytes;
    streamer_options.staging_slots = options.offload.staging_slots;
    streamer_options.sim_disk_gbps = options.offload.sim_disk_gbps;
    auto streamer = LayerStreamer::create(*engine->model_, backend, streamer_options);
    if (!streamer.ok()) return streamer.status().with_context("placing the target's weights");
    engine->streamer_ = std::move(streamer).value();
    SO_LOG(Info, "weights placed: ", format_bytes(double(engine->streamer_->resident_bytes())), " resident, ",
             format_bytes(double(engine->streamer_->streamed_bytes_per_pass())), " streamed each pass from ",
             format_bytes(double(engine->streamer_->host_bytes())), " of pinned host memory");
    engine->runner_->set_layer_source(engine->streamer_.get());
  }
  engine->kv_ = std::make_unique<KvCache>(backend, kv_geometry_for(engine->model_->config, options.kv_page_tokens),
                                          options.kv_budget_bytes, kv_placement);
  if (kv_placement == KvPlacement::kHost) {
    engine->host_attention_ = std::make_unique<HostAttention>(backend);
    engine->runner_->set_host_attention(engine->host_attention_.get());
  }
  engine->draft_length_ = std::make_unique<DraftLengthPolicy>(options.spec.draft_max, options.spec.adaptive);
  if (options.schedule == Schedule::kInterleaved) {
    if (!backend.concurrent_ops()) {
      return unsupported("the interleaved schedule drafts on a second thread beside the target's, which the ",
                         backend.name(), " backend does not support yet; use --schedule serial");
    }
    // note: without a drafter there is nothing to overlap; two halves would only halve
    // the rows per pass.
    if (!engine->drafter_) engine->options_.schedule = Schedule::kSerial;
    engine->draft_length_->set_overlapped(engine->options_.schedule == Schedule::kInterleaved);
  }
  engine->pass_log_ = std::make_unique<PassLog>(options.trace, options.max_pass_records);
  SO_LOG(Info, "ready: KV cache in ", kv_placement == KvPlacement::kHost ? "host" : "device", " memory");
  return engine;
}

void Engine::set_replanner(std::unique_ptr<Replanner> replanner) { replanner_ = std::move(replanner); }

void Engine::reset_stats() {
  stats_ = EngineStats{};
  pass_log_ = std::make_unique<PassLog>(options_.trace, options_.max_pass_records);
}

std::string Engine::applied_plan_json() const {
  const bool interleaved = options_.schedule == Schedule::kInterleaved;
  const int rows = options_.max_rows;
  const int pass_rows = interleaved ? (rows + 1) / 2 : rows;
  const int draft_length = drafter_ ? options_.spec.draft_max : 0;
  const int subbatch = !drafter_ ? 0 : options_.spec.draft_subbatch > 0 ? std::min(options_.spec.draft_subbatch, pass_rows)
                                                                          : pass_rows;
  const ModelWeights& w = model_->weights;
  int64_t all_weights = w.output.bytes();
  for (const LayerWeights& layer : w.layers) all_weights += layer_slab_layout(layer, model_->config).bytes;
  const nlohmann::ordered_json json = {
      {"rows", rows},
      {"schedule", interleaved ? "interleaved" : "serial"},
      {"draft_length", draft_length},
      {"draft_subbatch", subbatch},
      {"ring_slots", streamer_ && streamer_->n_streamed() > 0 ? streamer_->ring_slots() : options_.offload.ring_slots},
      {"kv_placement", kv_placement_name(kv_->placement())},
      {"prefill_chunk", options_.max_step_tokens},
      {"resident_bytes", streamer_ ? streamer_->resident_bytes() : all_weights},
      {"streamed_bytes_per_pass", streamer_ ? streamer_->streamed_bytes_per_pass() : 0},
      {"disk_bytes_per_pass", streamer_ ? streamer_->disk_bytes_per_pass() : 0},
      {"host_budget_bytes", options_.offload.host_budget_bytes},
  };
  return json.dump();
}

std::string Engine::memory_json() const {
  const nlohmann::ordered_json json = {
      {"kv_placement", kv_placement_name(kv_->placement())},
      {"kv_bytes", kv_->bytes_allocated()},
      {"kv_page_tokens", kv_->geometry().page_tokens},
      {"device_bytes_peak", backend_->device_bytes_peak()},
      {"device_memory_cap", options_.gpu_memory_bytes},
      {"weights_device_budget", options_.offload.device_budget_bytes},
      // note: dummy weights' twin layers share host slabs, so host bytes can be far below streamed ones.
      {"weights_resident_bytes", streamer_ ? streamer_->resident_bytes() : 0},
      {"weights_streamed_bytes_per_pass", streamer_ ? streamer_->streamed_bytes_per_pass() : 0},
      {"weights_host_bytes", streamer_ ? streamer_->host_bytes() : 0},
  };
  return json.dump();
}

Status Engine::write_trace(const std::string& path) const {
  if (!options_.trace) return invalid_argument("the engine keeps no trace spans; create it with trace on (--trace)");
  return pass_log_->write_chrome_trace(path);
}

Status Engine::forward(StepBuilder& builder, std::vector<float>& logits, int64_t n_prompt_tokens) {
  const StepInput& step = builder.input();
  const int64_t n_vocab = config().n_vocab;
  const size_t logit_bytes = size_t(step.n_logit_rows()) * n_vocab * sizeof(float);
  if (logits_buffer_.bytes() < logit_bytes) {
    logits_buffer_ = Buffer();  // the old one goes first: device memory is what runs out
    SO_ASSIGN_OR_RETURN(logits_buffer_, backend_->allocate(logit_bytes, MemoryKind::kDevice));
  }
  const double start = now_seconds();
  const int64_t streamed_before = streamer_ ? streamer_->bytes_copied() : 0;
  const double waited_before = streamer_ ? streamer_->copy_wait_seconds() : 0.0;
  const HostAttention* host = host_attention_.get();
  const double host_compute_before = host ? host->compute_seconds() : 0.0;
  const double host_transfer_before = host ? host->transfer_seconds() : 0.0;
  last_forward_ = {};
  SO_TRY(runner_->forward(step, kv_->geometry(), logits_buffer_.as<float>()));
  if (streamer_) {
    last_forward_.streamed_bytes = streamer_->bytes_copied() - streamed_before;
    last_forward_.copy_wait_seconds = streamer_->copy_wait_seconds() - waited_before;
    stats_.streamed_bytes += last_forward_.streamed_bytes;
    stats_.copy_wait_seconds += last_forward_.copy_wait_seconds;
    for (const StreamSpan& span : streamer_->take_wait_spans()) {
      pass_log_->add_span(TraceTrack::kCompute, span.label, span.start_seconds, span.end_seconds);
    }
  }
  if (host_attention_) {
    last_forward_.host_attention_seconds = host->compute_seconds() - host_compute_before;
    last_forward_.activation_transfer_seconds = host->transfer_seconds() - host_transfer_before;
    stats_.host_attention_seconds += last_forward_.host_attention_seconds;
    stats_.activation_transfer_seconds += last_forward_.activation_transfer_seconds;
    stats_.activation_bytes_to_host = host->bytes_to_host();
    stats_.activation_bytes_to_device = host->bytes_to_device();
    for (const StreamSpan& span : host_attention_->take_spans()) {
      const TraceTrack track = span.bytes > 0 ? TraceTrack::kActivations : TraceTrack::kHostAttention;
      pass_log_->add_span(track, span.label, span.start_seconds, span.end_seconds);
    }
  }
  builder.commit();
  // note: reading the logits back waits for the step's work on an asynchronous backend, so
  // the step's time includes it.
  logits.resize(size_t(step.n_logit_rows()) * n_vocab);
  backend_->copy_to_host(logits.data(), logits_buffer_.data(), logit_bytes);
  const double end = now_seconds();
  const double seconds = end - start;
  last_forward_.seconds = seconds;
  if (pass_log_->keeps_spans()) {
    pass_log_->add_span(TraceTrack::kCompute, str_cat("verify ", step.tokens.size(), " tokens"), start, end);
  }
  if (streamer_) {
    const std::vector<StreamSpan> copies = streamer_->take_copy_spans();
    for (const StreamSpan& span : copies) stats_.copy_busy_seconds += span.end_seconds - span.start_seconds;
    pass_log_->add_copy_spans(copies);
    for (const StreamSpan& span : streamer_->take_disk_spans()) {
      stats_.disk_busy_seconds += span.end_seconds - span.start_seconds;
      pass_log_->add_span(TraceTrack::kDisk, span.label, span.start_seconds, span.end_seconds);
    }
    stats_.disk_read_bytes = streamer_->bytes_read_from_disk();
  }

  int64_t prefill = 0, decode = 0;
  if (n_prompt_tokens >= 0) {
    prefill = n_prompt_tokens;
    decode = int64_t(step.tokens.size()) - n_prompt_tokens;
  } else {
    for (const StepRow& row : step.rows) (row.kv.n_tokens > 1 ? prefill : decode) += row.kv.n_tokens;
  }
  const double total = double(prefill + decode);
  stats_.steps += 1;
  stats_.prefill_tokens += prefill;
  stats_.verify_tokens += decode;
  stats_.prefill_seconds += seconds * (prefill / total);
  stats_.decode_seconds += seconds * (decode / total);
  stats_.weight_bytes_read += model_->weights.bytes();
  stats_.kv_bytes_read += builder.kv_positions_read() * kv_->bytes_per_token();
  return Status::Ok();
}

}  // namespace so
