#include "runtime/kv_placement.h"

#include <algorithm>
#include <limits>

#include "backend/host_attention.h"
#include "base/log.h"
#include "model/forward.h"
#include "planner/cost_model.h"
#include "runtime/model_shape_of.h"

static_assert(so::kHostScratchPageTokens == so::kHostScratchTokens, "the planner sizes host attention's scratch");

namespace so {

// The device budget for the target's weights; 0: read them in place (no streamer).
// A backend that cannot read host memory always places them: all resident when they fit,
// else streamed through what the draft leaves minus a reserve for the activations and, when
// it lives there, the KV cache.
Result<int64_t> target_weights_budget(const EngineOptions& options, const Model& model, const Backend& backend,
                                      KvPlacement kv_placement) {
  const int64_t given = options.offload.device_budget_bytes;
  if (backend.reads_host_memory()) return given > 0 && given < model.weights.bytes() ? given : 0;
  if (given > 0) return given;
  const int64_t free = backend.device_memory_free();
  if (free < 0) return std::numeric_limits<int64_t>::max();
  const int64_t kv_reserve =
      kv_placement == KvPlacement::kHost ? 0 : options.kv_budget_bytes > 0 ? options.kv_budget_bytes : free * 3 / 20;
  const int64_t reserve = kv_reserve + free / 20;
  if (free - reserve <= 0) {
    return resource_exhausted("device memory left for the target's weights is ", format_bytes(double(free)),
                              " before a reserve of ", format_bytes(double(reserve)),
                              " for the KV cache and activations; raise --gpu-mem or give --device-mem and --kv-mem");
  }
  return free - reserve;
}

namespace {

// The device memory the target's KV cache of max_rows rows at the expected context needs,
// and what the device has for it beside the target's weights, the draft's KV cache and a
// step's activations (planner/cost_model.h sizes them as the planner does).
struct KvRoom {
  int64_t positions = 0;
  int64_t needed = 0;
  int64_t room = 0;
};

Result<KvRoom> device_kv_room(const EngineOptions& options, const Model& model, const Model* draft_model,
                              const Backend& backend) {
  const ModelConfig& c = model.config;
  KvRoom kv;
  kv.positions = options.kv_positions_hint > 0 ? std::min<int64_t>(options.kv_positions_hint, c.n_ctx_train)
                                               : c.n_ctx_train;
  auto cache_bytes = [&](const ModelConfig& config, int n_layers) {
    const KvGeometry geometry = kv_geometry_for(config, options.kv_page_tokens, n_layers);
    return int64_t(options.max_rows) * ((kv.positions + geometry.page_tokens - 1) / geometry.page_tokens) *
           geometry.page_bytes();
  };
  kv.needed = cache_bytes(c, -1);
  SO_ASSIGN_OR_RETURN(const int64_t weights, target_weights_budget(options, model, backend, KvPlacement::kDevice));
  const int64_t free = backend.device_memory_free();
  const int k = options.spec.drafter == DrafterKind::kNone ? 0 : options.spec.draft_max;
  const int64_t logit_rows = std::min<int64_t>(int64_t(options.max_rows) * (k + 1), options.max_step_tokens);
  int64_t others = std::min(weights, free) + step_workspace_bytes(model_shape_of(model), options.max_step_tokens,
                                                                   logit_rows, options.micro_batch_tokens);
  if (options.spec.drafter == DrafterKind::kSelfDraft) others += cache_bytes(c, options.spec.draft_layers);
  if (draft_model != nullptr) others += cache_bytes(draft_model->config, -1);
  kv.room = free - others;
  return kv;
}

}  // namespace

// --kv-cache auto without a plan: the device when its memory holds the cache, host memory
// otherwise. --kv-cache device when it cannot: a clear error now rather than rows failing
// later. A device without a memory cap always holds it.
Result<KvPlacement> resolve_kv_placement(const EngineOptions& options, const Model& model, const Model* draft_model,
                                         const Backend& backend) {
  if (options.kv_cache == KvCacheChoice::kHost) return KvPlacement::kHost;
  if (backend.device_memory_free() < 0) return KvPlacement::kDevice;
  // note: without an expected context an explicit choice is taken as given.
  if (options.kv_cache == KvCacheChoice::kDevice && options.kv_positions_hint <= 0) return KvPlacement::kDevice;
  SO_ASSIGN_OR_RETURN(const KvRoom kv, device_kv_room(options, model, draft_model, backend));
  const std::string need = str_cat(options.max_rows, " rows of up to ", kv.positions, " positions need ",
                                   format_bytes(double(kv.needed)), " of KV cache; the device has ",
                                   format_bytes(double(std::max<int64_t>(kv.room, 0))),
                                   " for it beside the weights and activations");
  if (options.kv_cache == KvCacheChoice::kDevice) {
    if (kv.needed <= kv.room) return KvPlacement::kDevice;
    return resource_exhausted("--kv-cache device: ", need,
                              "; put the KV cache in host memory (--kv-cache host), raise --gpu-mem, or lower "
                              "--max-rows or --device-mem");
  }
  const KvPlacement placement = kv.needed <= kv.room ? KvPlacement::kDevice : KvPlacement::kHost;
  SO_LOG(Info, "KV cache in ", kv_placement_name(placement), " memory: ", need);
  return placement;
}

}  // namespace so
