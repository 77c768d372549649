#include "runtime/plan_setup.h"

#include "runtime/dummy_model.h"
#include "runtime/model_shape_of.h"
#include "runtime/step_calibration.h"

namespace so {

Result<Plan> plan_for(const EngineOptions& options, const PlanRequest& request, const PlanOverrides& given) {
  SO_ASSIGN_OR_RETURN(PlanInput input, plan_input_for(options, request, given));
  return make_plan(input);
}

Result<PlanInput> plan_input_for(const EngineOptions& options, const PlanRequest& request, const PlanOverrides& given) {
  SO_ASSIGN_OR_RETURN(std::unique_ptr<Model> target, load_model_as(options.model_path, options.load_format));
  PlanInput input;
  input.target = model_shape_of(*target);
  auto measured = [&](const std::string& path) -> std::optional<StepCost> {
    const auto found = request.profile.models.find(model_key(path));
    return found == request.profile.models.end() ? std::nullopt : std::optional<StepCost>(found->second);
  };
  input.target.measured = measured(options.model_path);
  switch (options.spec.drafter) {
    case DrafterKind::kNone: input.draft = DraftSource::kNone; break;
    case DrafterKind::kNgram: input.draft = DraftSource::kNgram; break;
    case DrafterKind::kSelfDraft:
      input.draft = DraftSource::kSelf;
      input.draft_model = input.target.first_layers(options.spec.draft_layers);
      break;
    case DrafterKind::kDraftModel: {
      SO_ASSIGN_OR_RETURN(std::unique_ptr<Model> draft, load_model_as(options.spec.draft_model_path, options.load_format));
      input.draft = DraftSource::kModel;
      input.draft_model = model_shape_of(*draft);
      input.draft_model.measured = measured(options.spec.draft_model_path);
      break;
    }
  }
  input.alpha = request.alpha;
  input.workload = request.workload;
  input.profile = request.profile;
  // note: --gpu-mem names the device's size for this run, measured or not.
  if (options.gpu_memory_bytes > 0) input.profile.device_memory_bytes = options.gpu_memory_bytes;
  input.device_budget_bytes = options.offload.device_budget_bytes;
  input.host_budget_bytes = request.host_budget_bytes > 0 ? request.host_budget_bytes : options.offload.host_budget_bytes;
  input.max_draft = options.spec.draft_max > 0 ? options.spec.draft_max : 8;
  input.max_rows = 1024;
  input.step_tokens = options.max_step_tokens;
  input.micro_batch_tokens = options.micro_batch_tokens;
  input.kv_page_tokens = options.kv_page_tokens;
  input.staging_slots = options.offload.staging_slots;
  if (given.max_rows) input.fixed_rows = options.max_rows;
  if (given.draft_max) input.fixed_draft = options.spec.draft_max;
  if (given.ring_slots) input.fixed_ring = options.offload.ring_slots;
  if (given.schedule) input.fixed_schedule = options.schedule == Schedule::kInterleaved ? 1 : 0;
  if (given.kv_cache && options.kv_cache != KvCacheChoice::kAuto) {
    input.fixed_kv = options.kv_cache == KvCacheChoice::kHost ? 1 : 0;
  }
  input.fixed_step_tokens = given.step_tokens;
  if (given.draft_subbatch) input.fixed_draft_subbatch = options.spec.draft_subbatch;
  return input;
}

void apply_plan(const Plan& plan, const PlanOverrides& given, EngineOptions& options) {
  if (!given.max_rows) options.max_rows = plan.rows;
  if (!given.draft_max && options.spec.drafter != DrafterKind::kNone) options.spec.draft_max = plan.draft_length;
  if (!given.ring_slots) options.offload.ring_slots = plan.ring_slots;
  if (!given.schedule) options.schedule = plan.interleaved ? Schedule::kInterleaved : Schedule::kSerial;
  if (!given.kv_cache || options.kv_cache == KvCacheChoice::kAuto) {
    options.kv_cache = plan.kv_on_device ? KvCacheChoice::kDevice : KvCacheChoice::kHost;
  }
  if (!given.step_tokens) options.max_step_tokens = plan.prefill_chunk;
  if (!given.draft_subbatch) options.spec.draft_subbatch = plan.draft_subbatch;
  if (plan.host_budget_bytes > 0) options.offload.host_budget_bytes = plan.host_budget_bytes;
  // note: a plan that streams assumed the weights' share of the device the rest leaves.
  if (options.offload.device_budget_bytes <= 0 && plan.streamed_bytes > 0) {
    options.offload.device_budget_bytes = plan.weight_budget_bytes;
  }
}

}  // namespace so
