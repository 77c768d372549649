#include "planner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "planner/placement.h"

namespace so {

double expected_tokens_per_pass(double alpha, int k) {
  if (k <= 0) return 1.0;
  alpha = std::clamp(alpha, 0.0, 1.0);
  if (alpha >= 1.0) return k + 1.0;
  return (1.0 - std::pow(alpha, k + 1)) / (1.0 - alpha);
}

namespace {

double matrix_seconds(const MatrixShape& matrix, const HardwareProfile& profile, int64_t tokens) {
  if (tokens <= 0) return 0.0;
  const MatmulSpeed speed = profile.matmul_speed(matrix.dtype);
  // An expert is read when at least one of the step's tokens is routed to it.
  const double read_share = matrix.token_share >= 1.0 ? 1.0 : 1.0 - std::pow(1.0 - matrix.token_share, double(tokens));
  const double flops = 2.0 * double(matrix.rows) * double(matrix.cols) * double(tokens) * matrix.token_share;
  return read_share * double(matrix.bytes) / (speed.weight_gbps * 1e9) + flops / (speed.gflops * 1e9);
}

}  // namespace

double attention_seconds(const ModelShape& model, const HardwareProfile& profile, const StepShape& step) {
  const bool on_host = !step.kv_on_device && !step.fresh_prompts;
  const double gflops = on_host ? profile.cpu_attention_gflops : profile.attention_gflops;
  const double flops = 4.0 * model.head_dim * double(model.n_heads) * step.attention_pairs;
  double seconds = model.n_layers * flops / (std::max(gflops, 1e-9) * 1e9);
  if (!step.kv_on_device) {
    // Per layer k and v go to the host, in f32; q too and the output back when host threads attend.
    const int64_t floats = 2 * model.kv_dim() + (on_host ? 2 * model.q_dim() : 0);
    const double bytes = double(step.tokens) * double(floats) * sizeof(float);
    seconds += model.n_layers * (bytes / (std::max(profile.copy_pinned_gbps, 1e-9) * 1e9) +
                                 2 * profile.op_overhead_seconds);
  }
  return seconds;
}

double step_compute_seconds(const ModelShape& model, const HardwareProfile& profile, const StepShape& step) {
  const double attention = attention_seconds(model, profile, step);
  if (model.measured) return model.measured->seconds(step.tokens, step.logit_rows) + attention;
  double layer = 0.0;
  for (const MatrixShape& matrix : model.layer) layer += matrix_seconds(matrix, profile, step.tokens);
  return model.n_layers * layer + attention + matrix_seconds(model.head, profile, step.logit_rows) +
         profile.step_overhead_seconds;
}

int64_t step_workspace_bytes(const ModelShape& model, int64_t tokens, int64_t logit_rows, int64_t micro_batch) {
  const int64_t micro = micro_batch > 0 ? std::min(tokens, micro_batch) : tokens;
  const int64_t width = std::max<int64_t>(model.dim, model.q_dim());
  const int64_t floats = tokens * model.dim + std::max(micro, logit_rows) * model.dim +
                         micro * (2 * model.q_dim() + 2 * model.kv_dim() + model.dim + 2LL * model.ffn_dim +
                                  model.extra_scratch_width) +
                         2 * logit_rows * width + logit_rows * int64_t(model.n_vocab);
  // A streamed head's chunk of logits before it goes to its columns.
  const int64_t row_bytes = model.head.rows > 0 ? model.head.bytes / model.head.rows : 0;
  const int64_t chunk_rows = pass_segments(std::vector<int64_t>{model.layer_bytes}, model.head.rows, row_bytes).head_chunk_rows;
  return int64_t(sizeof(float)) * (floats + logit_rows * std::min<int64_t>(chunk_rows, model.n_vocab));
}

int64_t host_attention_scratch_bytes(const ModelShape& model, int64_t tokens, int64_t rows) {
  const int64_t per_position = model.kv_bytes_per_token / std::max(1, model.n_layers);
  const int64_t pages = tokens / kHostScratchTokens + rows;  // each row's last page may be partial
  return pages * kHostScratchTokens * per_position;
}

double copy_seconds(const HardwareProfile& profile, int64_t bytes) {
  if (bytes <= 0) return 0.0;
  return double(bytes) / (std::max(profile.copy_pinned_gbps, 1e-9) * 1e9);
}

}  // namespace so
