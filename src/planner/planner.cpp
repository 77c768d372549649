#include "planner/planner.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace so {
namespace {

// Float activations a step keeps in device memory (residual, norms, Q/K/V, FFN, logits).
int64_t workspace_bytes(const ModelShape& model, int64_t tokens, int64_t logit_rows) {
  return int64_t(sizeof(float)) * (tokens * (4LL * model.dim + 3LL * model.ffn_dim) + logit_rows * model.n_vocab);
}

// Pairs of (query, key position) for `rows` rows at mean context `context`, each with
// `queries` new positions.
double attention_pairs(int64_t rows, double context, int queries) {
  return double(rows) * (queries * context + queries * (queries + 1) / 2.0);
}

}  // namespace

Result<Plan> evaluate_plan(const PlanInput& input, int rows, int draft_length, int ring_slots, bool kv_on_device,
                           bool interleaved) {
  const ModelShape& target = input.target;
  const HardwareProfile& profile = input.profile;
  const Workload& work = input.workload;
  const int64_t weight_budget = input.device_budget_bytes > 0 ? input.device_budget_bytes : profile.device_memory_bytes;
  const int64_t host_budget = input.host_budget_bytes > 0 ? input.host_budget_bytes : profile.host_memory_bytes;
  const bool drafts = input.draft != DraftSource::kNone && draft_length > 0;
  const int k = drafts ? draft_length : 0;
  // note: interleaving needs a drafter that computes; n-gram lookup is free anyway.
  interleaved = interleaved && drafts && input.draft != DraftSource::kNgram && rows > 1;
  const int pass_rows = interleaved ? (rows + 1) / 2 : rows;  // rows one pass verifies

  Plan plan;
  plan.rows = rows;
  plan.interleaved = interleaved;
  plan.draft_length = k;
  plan.draft_subbatch = drafts ? pass_rows : 0;
  plan.ring_slots = ring_slots;
  plan.kv_on_device = kv_on_device;
  plan.prefill_chunk = input.step_tokens;

  // Device memory: the budget (--device-mem) holds the target's weights: resident segments
  // and the ring. The draft model and its KV, the target's KV when placed there and the
  // step's workspace come on top and must fit the device's memory with them.
  const int64_t max_context = std::min<int64_t>(int64_t(work.prompt_tokens) + work.gen_tokens + k + 1, target.n_ctx);
  const int64_t kv_bytes = int64_t(rows) * max_context * target.kv_bytes_per_token;
  const int64_t verify_tokens = int64_t(pass_rows) * (k + 1);
  const int64_t step_tokens = std::max<int64_t>(verify_tokens, input.step_tokens);
  int64_t fixed = workspace_bytes(target, step_tokens, verify_tokens);
  if (kv_on_device) fixed += kv_bytes;
  if (drafts && input.draft == DraftSource::kModel) {
    fixed += input.draft_model.device_bytes() + int64_t(rows) * max_context * input.draft_model.kv_bytes_per_token;
  }
  const int64_t slot_bytes = std::max<int64_t>(target.layer_bytes, 1);
  const int64_t weights = target.device_bytes();
  const int64_t ring_bytes = int64_t(ring_slots) * slot_bytes;
  if (std::min(ring_bytes, weights) > weight_budget) {
    return resource_exhausted("the plan needs ", format_bytes(double(ring_bytes)), " of device memory for a ring of ",
                              ring_slots, " layers but the weights' budget is ", format_bytes(double(weight_budget)));
  }
  if (weights <= weight_budget) {
    plan.resident_bytes = weights;  // everything fits: nothing streams
  } else {
    // Whole segments (layers or head chunks of a layer's size) stay resident.
    plan.resident_bytes = std::min(weights - slot_bytes, (weight_budget - ring_bytes) / slot_bytes * slot_bytes);
  }
  plan.streamed_bytes = weights - plan.resident_bytes;
  plan.device_bytes = fixed + plan.resident_bytes + (plan.streamed_bytes > 0 ? ring_bytes : 0);
  if (plan.device_bytes > profile.device_memory_bytes) {
    return resource_exhausted("the plan needs ", format_bytes(double(plan.device_bytes)), " of device memory (",
                              rows, " rows, k ", k, ", KV ", kv_on_device ? "on device" : "in host",
                              ") but the device has ", format_bytes(double(profile.device_memory_bytes)));
  }
  // The host tier holds what streams, as far as the budget goes (the KV cache first, when
  // it lives there); the rest is read from the model file each pass (the disk tier),
  // through staging slots of a layer each.
  const int64_t kv_host = kv_on_device ? 0 : kv_bytes;
  const int64_t staging_bytes = 3 * slot_bytes;
  if (kv_host + std::min(plan.streamed_bytes, staging_bytes) > host_budget) {
    return resource_exhausted("the plan needs ", format_bytes(double(kv_host + std::min(plan.streamed_bytes, staging_bytes))),
                              " of host memory but the budget is ", format_bytes(double(host_budget)));
  }
  if (kv_host + plan.streamed_bytes <= host_budget) {
    plan.host_bytes = kv_host + plan.streamed_bytes;
  } else {
    if (profile.disk_read_gbps <= 0) {
      return resource_exhausted("the streamed weights (", format_bytes(double(plan.streamed_bytes)),
                                ") do not fit the host budget and the profile measured no disk (profile --disk-file)");
    }
    const int64_t in_host = (host_budget - kv_host - staging_bytes) / slot_bytes * slot_bytes;
    plan.disk_bytes = plan.streamed_bytes - std::max<int64_t>(0, in_host);
    plan.host_bytes = kv_host + (plan.streamed_bytes - plan.disk_bytes) + staging_bytes;
  }

  // One decode pass at the mean context of the generation phase.
  const double context = work.prompt_tokens + work.gen_tokens / 2.0;
  StepShape verify{verify_tokens, verify_tokens, attention_pairs(pass_rows, context, k + 1), kv_on_device};
  plan.decode.compute = step_compute_seconds(target, profile, verify);
  // note: disk reads run ahead of the copies, so the slower of the two links sets the pace.
  const double disk_seconds = plan.disk_bytes > 0 ? double(plan.disk_bytes) / (profile.disk_read_gbps * 1e9) : 0.0;
  plan.decode.copy = std::max(copy_seconds(profile, plan.streamed_bytes), disk_seconds);
  if (drafts && input.draft != DraftSource::kNgram) {
    // note: the first draft step also feeds what each row committed in its last pass (tau
    // tokens on average) before its new token; the other k - 1 feed one token per row.
    const double tau = expected_tokens_per_pass(input.alpha, k);
    const int64_t first_tokens = int64_t(std::ceil(pass_rows * tau));
    const StepShape first{first_tokens, pass_rows, attention_pairs(pass_rows, context, int(std::ceil(tau))), true};
    const StepShape next{pass_rows, pass_rows, attention_pairs(pass_rows, context, 1), true};
    plan.decode.draft = step_compute_seconds(input.draft_model, profile, first) +
                        (k - 1) * step_compute_seconds(input.draft_model, profile, next);
  }
  const double ring_copy = plan.streamed_bytes > 0 ? copy_seconds(profile, std::min(ring_bytes, plan.streamed_bytes)) : 0;
  plan.decode.pass = interleaved ? std::max(plan.decode.copy, plan.decode.compute + plan.decode.draft)
                                 : plan.decode.draft + std::max(plan.decode.copy - std::min(plan.decode.draft, ring_copy),
                                                                plan.decode.compute);
  plan.tokens_per_pass = pass_rows * expected_tokens_per_pass(input.alpha, k);
  plan.decode_tokens_per_second = plan.tokens_per_pass / plan.decode.pass;

  // Prefill in chunks of the step budget; every chunk streams the weights once.
  const double prompt_total = double(work.n_prompts) * work.prompt_tokens;
  const int64_t chunk = std::max(1, input.step_tokens);
  const double chunks = std::ceil(prompt_total / double(chunk));
  const double prompts_per_chunk = std::max(1.0, double(chunk) / std::max(1, work.prompt_tokens));
  StepShape prefill{chunk, int64_t(std::ceil(prompts_per_chunk)),
                    prompts_per_chunk * work.prompt_tokens * (work.prompt_tokens + 1) / 2.0, kv_on_device};
  plan.prefill_seconds = chunks * std::max(plan.decode.copy, step_compute_seconds(target, profile, prefill));
  const double generated = double(work.n_prompts) * work.gen_tokens;
  plan.job_seconds = plan.prefill_seconds + generated / plan.decode_tokens_per_second;
  plan.tokens_per_second = generated / plan.job_seconds;
  return plan;
}

Result<Plan> make_plan(const PlanInput& input) {
  std::vector<int> row_choices;
  const int most = std::max(1, std::min(input.max_rows, input.workload.n_prompts));
  for (int rows = 1; rows < most; rows *= 2) row_choices.push_back(rows);
  row_choices.push_back(most);
  if (input.fixed_rows > 0) row_choices = {input.fixed_rows};
  const int max_k = input.draft == DraftSource::kNone ? 0 : std::max(0, input.max_draft);
  const int min_k = input.fixed_draft >= 0 ? std::min(input.fixed_draft, max_k) : 0;
  const int min_ring = input.fixed_ring > 0 ? input.fixed_ring : 2;
  const int max_ring = input.fixed_ring > 0 ? input.fixed_ring : 4;
  std::vector<bool> schedules = {false, true};
  if (input.fixed_schedule >= 0) schedules = {input.fixed_schedule == 1};

  std::optional<Plan> best;
  Status last_error = invalid_argument("no plan was tried");
  for (int rows : row_choices) {
    for (int k = min_k; k <= (input.fixed_draft >= 0 ? min_k : max_k); ++k) {
      for (int ring = min_ring; ring <= max_ring; ++ring) {
        for (bool kv_on_device : {true, false}) {
          for (bool interleaved : schedules) {
            Result<Plan> plan = evaluate_plan(input, rows, k, ring, kv_on_device, interleaved);
            if (!plan.ok()) {
              last_error = plan.status();
              continue;
            }
            // note: strictly better only, so ties keep fewer rows, shorter drafts, a
            // shallower ring, KV on the device and the serial schedule.
            if (!best || plan->tokens_per_second > best->tokens_per_second * (1 + 1e-9)) best = *plan;
          }
        }
      }
    }
  }
  if (!best) return last_error.with_context("no plan fits the budgets");
  return *best;
}

std::string Plan::to_json() const {
  nlohmann::ordered_json json = {
      {"rows", rows},
      {"schedule", interleaved ? "interleaved" : "serial"},
      {"draft_length", draft_length},
      {"draft_subbatch", draft_subbatch},
      {"ring_slots", ring_slots},
      {"kv_placement", kv_on_device ? "device" : "host"},
      {"prefill_chunk", prefill_chunk},
      {"resident_bytes", resident_bytes},
      {"streamed_bytes_per_pass", streamed_bytes},
      {"disk_bytes_per_pass", disk_bytes},
      {"device_bytes", device_bytes},
      {"host_bytes", host_bytes},
      {"decode_pass", {{"copy_seconds", decode.copy}, {"compute_seconds", decode.compute},
                       {"draft_seconds", decode.draft}, {"pass_seconds", decode.pass}}},
      {"tokens_per_pass", tokens_per_pass},
      {"decode_tokens_per_second", decode_tokens_per_second},
      {"prefill_seconds", prefill_seconds},
      {"job_seconds", job_seconds},
      {"tokens_per_second", tokens_per_second},
  };
  return json.dump(2);
}

std::string Plan::describe() const {
  const std::string pass_shape =
      interleaved ? str_cat(" ms = max(copy ", format_double(decode.copy * 1e3, 2), " ms, compute ",
                            format_double(decode.compute * 1e3, 2), " ms + draft ", format_double(decode.draft * 1e3, 2),
                            " ms for the other half)\n")
                  : str_cat(" ms = draft ", format_double(decode.draft * 1e3, 2), " ms + max(copy ",
                            format_double(decode.copy * 1e3, 2), " ms, compute ", format_double(decode.compute * 1e3, 2),
                            " ms) with the ring's overlap\n");
  return str_cat("rows               ", rows, interleaved ? str_cat(" (two halves of ", (rows + 1) / 2, ")") : "", "\n",
                 "schedule           ", interleaved ? "interleaved: draft one half while verifying the other" : "serial",
                 "\n",
                 "draft length k     ", draft_length, draft_length > 0 ? str_cat(" (draft sub-batch ", draft_subbatch, ")") : "", "\n",
                 "resident weights   ", format_bytes(double(resident_bytes)), ", streamed per pass ",
                 format_bytes(double(streamed_bytes)),
                 disk_bytes > 0 ? str_cat(" (", format_bytes(double(disk_bytes)), " of it read from disk)") : "", "\n",
                 "ring slots         ", ring_slots, "\n",
                 "KV cache           ", kv_on_device ? "device" : "host (attention on CPU threads)", "\n",
                 "prefill chunk      ", prefill_chunk, " tokens\n",
                 "device memory      ", format_bytes(double(device_bytes)), "\n",
                 "decode pass        ", format_double(decode.pass * 1e3, 2), pass_shape,
                 "tokens per pass    ", format_double(tokens_per_pass, 2), "\n",
                 "predicted          ", format_double(decode_tokens_per_second, 1), " tok/s decoding, ",
                 format_double(tokens_per_second, 1), " tok/s over the job (prefill ", format_double(prefill_seconds, 2),
                 " s, job ", format_double(job_seconds, 2), " s)\n");
}

}  // namespace so
