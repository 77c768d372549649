// The engine's public API: load a model, generate for many requests at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/backend_factory.h"
#include "base/status.h"
#include "kv/kv_cache.h"
#include "kv/step_builder.h"
#include "model/forward.h"
#include "model/model.h"
#include "offload/layer_streamer.h"
#include "runtime/dummy_model.h"
#include "runtime/pass_log.h"
#include "runtime/replanner.h"
#include "runtime/request.h"
#include "runtime/request_feed.h"
#include "runtime/stats.h"
#include "sampler/sampler.h"
#include "spec/draft_length.h"
#include "spec/drafter.h"
#include "tokenizer/tokenizer.h"

namespace so {

enum class DrafterKind { kNone, kDraftModel, kSelfDraft, kNgram };

// Speculative decoding (spec/): who drafts and how many tokens per row per pass.
struct SpecOptions {
  DrafterKind drafter = DrafterKind::kNone;
  std::string draft_model_path;  // kDraftModel: same vocabulary as the target
  int draft_layers = 0;          // kSelfDraft: the target's first N layers
  int draft_max = 6;             // k, or its cap when adaptive; 0 decodes plainly
  bool adaptive = true;          // spec/draft_length.h states the rule
  int ngram_max = 3;             // kNgram: longest suffix looked up
  int draft_context = 0;         // draft models: last N prompt tokens read; 0: all of them
  int draft_subbatch = 0;        // rows the drafter proposes for at once; 0: all of a pass's rows
  // With dummy weights only: each row's accepted length drawn from the acceptance law
  // (P(accept draft i | drafts before it accepted) = alpha) after a real verification pass;
  // < 0: off.
  double simulate_alpha = -1.0;
};

// Weight offload (offload/): layers beyond the device budget stream from host memory.
struct OffloadOptions {
  int64_t device_budget_bytes = 0;  // weights in device memory; 0: everything resident
  int ring_slots = 2;               // device slots streamed layers rotate through
  double sim_link_gbps = 0.0;       // CPU backend: throttle host->device copies to this
  // The disk tier: streamed layers beyond this many bytes of pinned host memory stay in the
  // model file and are read ahead into staging slots; 0: every streamed layer in host memory.
  int64_t host_budget_bytes = 0;
  int staging_slots = 3;
  double sim_disk_gbps = 0.0;       // throttle disk reads to this (to study slow disks)
};

// How drafting and verification share a pass (runtime/scheduler.h).
enum class Schedule { kSerial, kInterleaved };

// Where the target's KV cache lives (--kv-cache). kAuto: the plan's choice when there is a
// plan; otherwise the device when its memory holds the cache of max_rows rows at
// kv_positions_hint positions beside the weights, else host memory.
enum class KvCacheChoice { kAuto, kDevice, kHost };

struct EngineOptions {
  std::string model_path;
  LoadFormat load_format;  // dummy: model_path (and the draft's) is a config
  // kCopied: the model files are read into private memory (a server survives a file changed
  // under it); kMapped shares the page cache (--mmap).
  MapMode map_mode = MapMode::kMapped;
  BackendKind backend = BackendKind::kCpu;
  int64_t gpu_memory_bytes = 0;  // CUDA: hard cap on device memory (--gpu-mem); 0: what is free
  int n_threads = 0;            // 0: one per physical core
  int max_rows = 32;            // rows generating at once (continuous batching)
  int max_step_tokens = 512;    // tokens per forward step, prefill chunks included
  // A step's layers run over micro-batches of at most this many tokens (layer-major
  // prefill: a large --step-tokens loads each streamed layer once for a whole wave).
  int micro_batch_tokens = 512;
  int64_t kv_budget_bytes = 0;  // 0: no cap
  int kv_page_tokens = 256;
  KvCacheChoice kv_cache = KvCacheChoice::kAuto;
  // Positions a row is expected to reach at most (prompt + generated + drafts), for kAuto;
  // 0: the model's context.
  int64_t kv_positions_hint = 0;
  SpecOptions spec;
  OffloadOptions offload;
  // kInterleaved: two half-batches, the draft drafting for one while the target verifies
  // the other (needs a backend whose ops several threads may issue).
  Schedule schedule = Schedule::kSerial;
  bool trace = false;  // keep every span for write_trace (memory grows with the run)
  // Per-pass records kept (the oldest half is dropped past it); 0: all. A server sets it.
  size_t max_pass_records = 0;
};

// The tokenizer of a model file alone (no weights mapped into compute).
// The tokenizer of a model file alone (no weights mapped into compute), or of a dummy
// model's config (--load-format dummy).
Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& model_path, bool dummy = false);

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);
  ~Engine();

  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const EngineOptions& options() const { return options_; }
  std::string backend_name() const { return backend_->name(); }
  // The drafter's name, or "" when decoding plainly.
  std::string_view drafter_name() const { return drafter_ ? drafter_->name() : std::string_view(); }

  // Continuous batching over all requests; results in request order. A request that
  // can't run (empty prompt, longer than the context) gets finish kError and the rest go on.
  std::vector<GenerationResult> generate(std::span<const GenerationRequest> requests,
                                         const TokenCallback& on_token = {}, const FinishCallback& on_finish = {});
  // The same scheduler over requests as they arrive: runs until the feed is closed and
  // every request it gave has finished. Requests join the running batch between passes.
  void serve(RequestFeed& feed);

  // Lower level, for tools and tests: one forward step over rows of the engine's KV cache.
  ModelRunner& runner() { return *runner_; }
  KvCache& kv_cache() { return *kv_; }
  const LayerStreamer* streamer() const { return streamer_.get(); }
  const HostAttention* host_attention() const { return host_attention_.get(); }
  Backend& backend() { return *backend_; }
  // Runs a step built on kv_cache(), commits it, and accounts it in the stats; logits on
  // the host, n_logit_rows x n_vocab. n_prompt_tokens: how many of the step's tokens are
  // prompt (prefill) tokens; -1 counts rows of more than one token as prefill.
  Status forward(StepBuilder& step, std::vector<float>& logits, int64_t n_prompt_tokens = -1);

  const EngineStats& stats() const { return stats_; }
  // Per-pass records of generate() calls since the last reset.
  const PassLog& pass_log() const { return *pass_log_; }
  void reset_stats();
  // The choices the engine runs with, named as a plan's (planner/planner.h Plan::to_json):
  // rows, schedule, draft length and sub-batch, ring slots, KV placement, step tokens, and
  // the weights' placement as the layer streamer made it. A JSON object.
  std::string applied_plan_json() const;
  // Where the KV cache lives and how much of it there is, with the device memory's peak.
  std::string memory_json() const;
  // Chrome trace-event JSON of the passes (needs EngineOptions::trace).
  Status write_trace(const std::string& path) const;
  // The plan the options came from, to plan again between passes when the measured
  // acceptance drifts from its estimate (runtime/replanner.h).
  void set_replanner(std::unique_ptr<Replanner> replanner);

 private:
  friend class Scheduler;
  Engine() = default;
  EngineOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<LayerStreamer> streamer_;  // set when the target streams
  std::unique_ptr<HostAttention> host_attention_;  // set when the KV cache is in host memory
  std::unique_ptr<Model> draft_model_;  // a separate draft model, when one is used
  std::unique_ptr<Drafter> drafter_;
  std::unique_ptr<DraftLengthPolicy> draft_length_;
  std::unique_ptr<Replanner> replanner_;
  Buffer logits_buffer_;
  EngineStats stats_;
  std::unique_ptr<PassLog> pass_log_;
  // The last forward(), for the pass record.
  struct ForwardTimes {
    double seconds = 0, copy_wait_seconds = 0, host_attention_seconds = 0, activation_transfer_seconds = 0;
    int64_t streamed_bytes = 0;
  } last_forward_;
};

}  // namespace so
