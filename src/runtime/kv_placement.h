// Where the target's weights and KV cache go in device memory when the engine is built:
// the weights' device budget, and the KV cache's placement (--kv-cache), sized against what
// the device has beside the weights, the draft's cache and a step's activations.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "base/status.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/engine.h"

namespace so {

// The device budget for the target's weights; 0: read them in place (no streamer).
Result<int64_t> target_weights_budget(const EngineOptions& options, const Model& model, const Backend& backend,
                                      KvPlacement kv_placement);

// --kv-cache host, device (refused when the device cannot hold max_rows rows at the expected
// context), or auto (the device when it can, else host memory). draft_model: a separate draft
// model already loaded, or null.
Result<KvPlacement> resolve_kv_placement(const EngineOptions& options, const Model& model, const Model* draft_model,
                                         const Backend& backend);

}  // namespace so
