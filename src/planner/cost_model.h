// Predicted seconds of a forward step and of a whole pass (ARCHITECTURE.md section 2), from
// a model shape and a hardware profile. Pure functions: the planner's arithmetic.
#pragma once

#include <cstdint>

#include "planner/model_shape.h"
#include "planner/profile.h"

namespace so {

// Expected tokens committed per row per pass when each of k drafts is accepted with
// probability alpha, independently, and acceptance stops at the first rejection:
// tau = (1 - alpha^(k+1)) / (1 - alpha); tau = 1 at k = 0.
double expected_tokens_per_pass(double alpha, int k);

// One forward step of a model: `tokens` token rows, `logit_rows` of them through the head,
// attention over `attention_pairs` (query, key position) pairs per layer and head.
struct StepShape {
  int64_t tokens = 0;
  int64_t logit_rows = 0;
  double attention_pairs = 0;
  bool kv_on_device = true;
  // Every row's context is in the step (prompts' first chunks): with the KV cache in host
  // memory the device attends them and only k and v go to the host (backend/host_attention.h).
  bool fresh_prompts = false;
};

// Attention's seconds in the step: on the device, or with the KV cache in host memory on
// host threads plus the trips of q, k, v and the output over the link.
double attention_seconds(const ModelShape& model, const HardwareProfile& profile, const StepShape& step);
// Compute seconds of the step with all weights in place (no copies), attention included.
double step_compute_seconds(const ModelShape& model, const HardwareProfile& profile, const StepShape& step);

// Float activations a step of `tokens` keeps in device memory, as the model runner sizes them
// (model/forward.cpp), with the engine's logits: the residual stream for every token, a
// micro-batch's worth of the rest (0: one batch), the rows going to the head, and the logits
// (with a streamed head's chunk of them).
// Device scratch where a step's first prompt chunks attend while the KV lives in host memory:
// one layer's K and V for the step's tokens, in pages of kHostScratchTokens positions per row
// (backend/host_attention.h's kHostScratchPageTokens).
constexpr int kHostScratchTokens = 16;
int64_t host_attention_scratch_bytes(const ModelShape& model, int64_t tokens, int64_t rows);

int64_t step_workspace_bytes(const ModelShape& model, int64_t tokens, int64_t logit_rows, int64_t micro_batch);

// Seconds to stream `bytes` over the host-to-device link.
double copy_seconds(const HardwareProfile& profile, int64_t bytes);

}  // namespace so
