#include "planner/planner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "planner/placement.h"

namespace so {
namespace {

// Pairs of (query, key position) for `rows` rows at mean context `context`, each with
// `queries` new positions.
double attention_pairs(int64_t rows, double context, int queries) {
  return double(rows) * (queries * context + queries * (queries + 1) / 2.0);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Draft steps for one pass over `rows` rows in sub-batches: the first step of each also feeds
// the tau tokens each row committed last pass, the other k - 1 one token per row.
double draft_seconds(const PlanInput& input, int rows, int k, int subbatch, double context) {
  if (k <= 0 || input.draft == DraftSource::kNone || input.draft == DraftSource::kNgram) return 0.0;
  const double tau = expected_tokens_per_pass(input.alpha, k);
  double seconds = 0;
  for (int first = 0; first < rows; first += subbatch) {
    const int n = std::min(subbatch, rows - first);
    const StepShape feed{int64_t(std::ceil(n * tau)), n, attention_pairs(n, context, int(std::ceil(tau))), true};
    const StepShape next{n, n, attention_pairs(n, context, 1), true};
    seconds += step_compute_seconds(input.draft_model, input.profile, feed) +
               (k - 1) * step_compute_seconds(input.draft_model, input.profile, next);
  }
  return seconds;
}

// The target's pass segments and their placements, computed once per search.
struct PlacementCache {
  PassSegments segments;
  // (ring slots, host budget, weight budget)
  std::map<std::tuple<int, int64_t, int64_t>, Result<SegmentPlacement>> by_budgets;
};
Result<Plan> evaluate_cached(const PlanInput& input, const PlanChoice& choice, PlacementCache& cache);

}  // namespace

Result<Plan> evaluate_plan(const PlanInput& input, const PlanChoice& choice) {
  PlacementCache cache{input.target.pass_segments(), {}};
  return evaluate_cached(input, choice, cache);
}

namespace {

Result<Plan> evaluate_cached(const PlanInput& input, const PlanChoice& choice, PlacementCache& cache) {
  const ModelShape& target = input.target;
  const HardwareProfile& profile = input.profile;
  const Workload& work = input.workload;
  const int rows = choice.rows;
  const bool drafts = input.draft != DraftSource::kNone && choice.draft_length > 0;
  const int k = drafts ? choice.draft_length : 0;
  // note: interleaving needs a drafter that computes; n-gram lookup is free anyway.
  const bool interleaved = choice.interleaved && drafts && input.draft != DraftSource::kNgram && rows > 1;
  const int pass_rows = interleaved ? (rows + 1) / 2 : rows;  // rows one pass verifies
  const bool model_draft = drafts && input.draft != DraftSource::kNgram;

  Plan plan;
  plan.workload = work;
  plan.rows = rows;
  plan.interleaved = interleaved;
  plan.draft_length = k;
  plan.draft_subbatch = drafts ? std::clamp(choice.draft_subbatch > 0 ? choice.draft_subbatch : pass_rows, 1, pass_rows) : 0;
  plan.ring_slots = choice.ring_slots;
  plan.kv_on_device = choice.kv_on_device;
  plan.prefill_chunk = choice.prefill_chunk;
  const int64_t verify_tokens = int64_t(pass_rows) * (k + 1);
  if (verify_tokens > plan.prefill_chunk) {
    return resource_exhausted("a step of ", plan.prefill_chunk, " tokens holds fewer than the ", verify_tokens,
                              " a pass verifies (", pass_rows, " rows of ", k + 1, "); raise --step-tokens");
  }

  // The KV caches at the longest context, in whole pages as the cache grows them.
  const int64_t page = std::max(1, input.kv_page_tokens);
  const int64_t max_context = std::min<int64_t>(int64_t(work.prompt_tokens) + work.gen_tokens + k + 1, target.n_ctx);
  const int64_t kv_positions = ceil_div(max_context, page) * page;
  plan.kv_bytes = int64_t(rows) * kv_positions * target.kv_bytes_per_token;

  // Device memory: the budget (--device-mem) holds the target's weights: resident segments
  // and the ring. The draft model and its KV, the target's KV when placed there and the
  // steps' activations come on top and must fit the device's memory with them.
  int64_t fixed = step_workspace_bytes(target, plan.prefill_chunk, std::max<int64_t>(verify_tokens, 1),
                                  input.micro_batch_tokens);
  if (plan.kv_on_device) {
    fixed += plan.kv_bytes;
  } else {
    fixed += host_attention_scratch_bytes(target, plan.prefill_chunk, rows);
  }
  if (model_draft) {
    // note: the draft's catch-up steps take the step budget too; its sub-batch bounds its logits.
    const int64_t draft_tokens = std::max<int64_t>(plan.prefill_chunk, int64_t(plan.draft_subbatch) * (k + 1));
    fixed += step_workspace_bytes(input.draft_model, draft_tokens, plan.draft_subbatch, 0) +
             int64_t(rows) * kv_positions * input.draft_model.kv_bytes_per_token;
    // note: a self-draft's layers and head are a resident copy of their own on a GPU, beside the
    // target's --device-mem (on an H200, DeepSeek-V2-Lite's 4-layer self-draft took 5.9 GB).
    fixed += input.draft_model.device_bytes();
  }
  // The weights get --device-mem, or what the rest leaves of the device (in 64 MiB steps, so
  // that candidates share placements).
  constexpr int64_t kBudgetStep = int64_t(64) << 20;
  const int64_t weight_budget = input.device_budget_bytes > 0
                                    ? input.device_budget_bytes
                                    : std::max<int64_t>(0, profile.device_memory_bytes - fixed) / kBudgetStep * kBudgetStep;
  // Host memory: the target's KV when it lives there, then the pinned slabs of what streams
  // as far as the host budget goes; the rest is read from the model file each pass.
  const int64_t kv_host = plan.kv_on_device ? 0 : plan.kv_bytes;
  if (kv_host > profile.host_memory_bytes) {
    return resource_exhausted("the KV cache of ", rows, " rows (", format_bytes(double(kv_host)),
                              ") does not fit the host's ", format_bytes(double(profile.host_memory_bytes)));
  }
  const int64_t host_room = profile.host_memory_bytes - kv_host;
  const int64_t host_budget = input.host_budget_bytes > 0 ? std::min(input.host_budget_bytes, host_room) : host_room;
  const PlacementBudgets budgets{weight_budget, choice.ring_slots, host_budget, input.staging_slots};
  const std::tuple key{choice.ring_slots, host_budget, weight_budget};
  auto cached = cache.by_budgets.find(key);
  if (cached == cache.by_budgets.end()) {
    cached = cache.by_budgets
                 .emplace(key,
                          place_segments(cache.segments.bytes, int64_t(target.dim) * int64_t(sizeof(float)), budgets,
                                         cache.segments.twins))
                 .first;
  }
  if (!cached->second.ok()) return cached->second.status();
  const SegmentPlacement& placement = *cached->second;
  plan.resident_bytes = placement.resident_bytes;
  plan.streamed_bytes = placement.streamed_bytes;
  plan.disk_bytes = placement.disk_bytes;
  // note: the runtime caps pinned slabs only when the plan reads from disk; otherwise every
  // streamed segment gets one, as the host's memory allows.
  plan.host_budget_bytes = plan.disk_bytes > 0 || input.host_budget_bytes > 0 ? host_budget : 0;
  plan.device_bytes = fixed + placement.device_bytes;
  plan.weight_budget_bytes = weight_budget;
  plan.host_bytes = kv_host + placement.host_bytes;
  if (plan.device_bytes > profile.device_memory_bytes) {
    return resource_exhausted("the plan needs ", format_bytes(double(plan.device_bytes)), " of device memory (",
                              rows, " rows, k ", k, ", KV ", plan.kv_on_device ? "on device" : "in host",
                              ") but the device has ", format_bytes(double(profile.device_memory_bytes)));
  }
  if (plan.disk_bytes > 0 && profile.disk_read_gbps <= 0) {
    return resource_exhausted("the streamed weights (", format_bytes(double(plan.streamed_bytes)),
                              ") do not fit the host budget and the profile measured no disk (profile --disk-file)");
  }

  // One decode pass at the mean context of the generation phase.
  const double context = work.prompt_tokens + work.gen_tokens / 2.0;
  const StepShape verify{verify_tokens, verify_tokens, attention_pairs(pass_rows, context, k + 1), plan.kv_on_device};
  plan.decode.compute = step_compute_seconds(target, profile, verify);
  plan.decode.host_attention = plan.kv_on_device ? 0.0 : attention_seconds(target, profile, verify);
  // note: disk reads run ahead of the copies, so the slower of the two links sets the pace.
  const double disk_seconds = plan.disk_bytes > 0 ? double(plan.disk_bytes) / (profile.disk_read_gbps * 1e9) : 0.0;
  plan.decode.copy = std::max(copy_seconds(profile, plan.streamed_bytes), disk_seconds);
  plan.decode.draft = draft_seconds(input, pass_rows, k, std::max(1, plan.draft_subbatch), context);
  const int64_t ring_bytes = placement.slot_bytes * placement.ring_slots;
  const double ring_copy = copy_seconds(profile, std::min(ring_bytes, plan.streamed_bytes));
  plan.decode.pass = interleaved ? std::max(plan.decode.copy, plan.decode.compute + plan.decode.draft)
                                 : plan.decode.draft + std::max(plan.decode.copy - std::min(plan.decode.draft, ring_copy),
                                                                plan.decode.compute);
  plan.tokens_per_pass = pass_rows * expected_tokens_per_pass(input.alpha, k);
  plan.decode_tokens_per_second = plan.tokens_per_pass / plan.decode.pass;

  // Prefill in steps of the step budget, each streaming the weights once; a step holds at
  // most the prompts of the rows admitted at once.
  const double prompt_total = double(work.n_prompts) * work.prompt_tokens;
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(plan.prefill_chunk, int64_t(rows) * std::max(1, work.prompt_tokens)));
  const double chunks = std::ceil(prompt_total / double(chunk));
  const double prompts_per_chunk = std::max(1.0, double(chunk) / std::max(1, work.prompt_tokens));
  const StepShape prefill{chunk, int64_t(std::ceil(prompts_per_chunk)),
                          prompts_per_chunk * work.prompt_tokens * (work.prompt_tokens + 1) / 2.0, plan.kv_on_device,
                          /*fresh_prompts=*/chunk >= work.prompt_tokens};
  plan.prefill_seconds = chunks * std::max(plan.decode.copy, step_compute_seconds(target, profile, prefill));
  const double generated = double(work.n_prompts) * work.gen_tokens;
  plan.job_seconds = plan.prefill_seconds + generated / plan.decode_tokens_per_second;
  plan.tokens_per_second = generated / plan.job_seconds;
  return plan;
}

}  // namespace

Result<Plan> make_plan(const PlanInput& input) {
  PlacementCache cache{input.target.pass_segments(), {}};
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
  std::vector<bool> placements = {true, false};
  if (input.fixed_kv >= 0) placements = {input.fixed_kv == 0};

  std::optional<Plan> best;
  // note: the first choice tried is the smallest (one row, no drafts, the shallowest ring,
  // KV on the device), so its error is the one that says what no plan can get around.
  Status first_error = Status::Ok();
  auto consider = [&](const PlanChoice& choice) {
    Result<Plan> plan = evaluate_cached(input, choice, cache);
    if (!plan.ok()) {
      if (first_error.ok()) first_error = plan.status();
      return false;
    }
    // note: strictly better only, so ties keep fewer rows, shorter drafts, a shallower
    // ring, KV on the device, the serial schedule and smaller steps.
    if (!best || plan->tokens_per_second > best->tokens_per_second * (1 + 1e-9)) best = *plan;
    return true;
  };
  for (int rows : row_choices) {
    for (int k = min_k; k <= (input.fixed_draft >= 0 ? min_k : max_k); ++k) {
      for (bool interleaved : schedules) {
        const int pass_rows = interleaved && rows > 1 && k > 0 ? (rows + 1) / 2 : rows;
        // Steps from the smallest that holds a pass's verified tokens, doubling up to the
        // admitted rows' prompts (layer-major prefill loads each streamed layer once per step).
        const int smallest = std::max<int>(input.step_tokens, pass_rows * (k + 1));
        std::vector<int> steps = {input.fixed_step_tokens ? input.step_tokens : smallest};
        const int64_t wave = int64_t(rows) * std::max(1, input.workload.prompt_tokens);
        for (int64_t step = int64_t(steps[0]) * 2; !input.fixed_step_tokens && step / 2 < wave && step <= (1 << 16);
             step *= 2) {
          steps.push_back(int(step));
        }
        for (int ring = min_ring; ring <= max_ring; ++ring) {
          for (bool kv_on_device : placements) {
            for (int step : steps) {
              PlanChoice choice{rows, k, ring, kv_on_device, interleaved, step, input.fixed_draft_subbatch};
              // The draft's sub-batch: all of a pass's rows, halved (a few times) until it fits.
              for (int sub = pass_rows; input.fixed_draft_subbatch == 0 && sub >= std::max(1, pass_rows / 8); sub /= 2) {
                choice.draft_subbatch = sub;
                if (consider(choice) || k == 0) break;
              }
              if (input.fixed_draft_subbatch > 0) consider(choice);
            }
          }
        }
      }
    }
  }
  if (!best) return first_error.with_context("no plan fits the budgets");
  return *best;
}

std::string Plan::to_json() const {
  nlohmann::ordered_json json = {
      {"workload", {{"prompts", workload.n_prompts}, {"prompt_tokens", workload.prompt_tokens},
                    {"gen_tokens", workload.gen_tokens}}},
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
      {"host_budget_bytes", host_budget_bytes},
      {"kv_bytes", kv_bytes},
      {"device_bytes", device_bytes},
      {"host_bytes", host_bytes},
      {"decode_pass", {{"copy_seconds", decode.copy}, {"compute_seconds", decode.compute},
                       {"host_attention_seconds", decode.host_attention}, {"draft_seconds", decode.draft},
                       {"pass_seconds", decode.pass}}},
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
                 "KV cache           ", format_bytes(double(kv_bytes)), " in ",
                 kv_on_device ? "device memory"
                              : str_cat("host memory (attention on host threads: ",
                                        format_double(decode.host_attention * 1e3, 2), " ms of the pass's compute)"),
                 "\n",
                 "prefill chunk      ", prefill_chunk, " tokens\n",
                 "device memory      ", format_bytes(double(device_bytes)), "\n",
                 "decode pass        ", format_double(decode.pass * 1e3, 2), pass_shape,
                 "tokens per pass    ", format_double(tokens_per_pass, 2), "\n",
                 "predicted          ", format_double(decode_tokens_per_second, 1), " tok/s decoding, ",
                 format_double(tokens_per_second, 1), " tok/s over the job (prefill ", format_double(prefill_seconds, 2),
                 " s, job ", format_double(job_seconds, 2), " s)\n");
}

}  // namespace so
