// Normalization, rotary embedding and the element-wise ops, with the CPU backend's
// arithmetic (backend/cpu/ops_reference.cpp) where the order of operations matters.
#include <cuda_fp16.h>

#include <cfloat>
#include <cmath>
#include <numbers>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace so::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__device__ __forceinline__ float block_sum(float value, float* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < int(blockDim.x / 32) ? shared[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
    if (lane == 0) shared[0] = value;
  }
  __syncthreads();
  return shared[0];
}

// note: out may alias x (per-head q/k norms run in place); each thread rewrites only what it read.
__global__ void rmsnorm_kernel(const float* x, const float* __restrict__ weight, float eps, int64_t dim, float* out) {
  __shared__ float shared[32];
  const float* row = x + int64_t(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += row[i] * row[i];
  const float mean = block_sum(sum, shared) / float(dim);
  const float scale = 1.0f / sqrtf(mean + eps);
  float* destination = out + int64_t(blockIdx.x) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) destination[i] = (row[i] * scale) * weight[i];
}

struct RopeArgs {
  RopeStyle style;
  int n_rot;
  float theta_scale;
  float freq_scale;
  float ext_factor;
  float attn_factor;
  float corr_low;
  float corr_high;
};

// One thread per (token, head, rotated pair).
__global__ void rope_kernel(float* x, const int32_t* __restrict__ positions, int64_t n_tokens, int64_t n_heads,
                            int64_t head_dim, RopeArgs args, const float* __restrict__ freq_factors) {
  const int half = args.n_rot / 2;
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= n_tokens * n_heads * half) return;
  const int i = int(index % half);
  const int64_t head = index / half;
  const int64_t token = head / n_heads;
  // note: theta advances by repeated multiplication, as on the CPU (and in llama.cpp).
  float theta = float(positions[token]);
  for (int j = 0; j < i; ++j) theta *= args.theta_scale;
  const float theta_extrap = freq_factors ? theta / freq_factors[i] : theta;
  const float theta_interp = args.freq_scale * theta_extrap;
  float angle = theta_interp;
  float mscale = args.attn_factor;
  if (args.ext_factor != 0.0f) {
    const float ramp_y = float(i - args.corr_low) / fmaxf(0.001f, args.corr_high - args.corr_low);
    const float ramp_mix = (1.0f - fminf(1.0f, fmaxf(0.0f, ramp_y))) * args.ext_factor;
    angle = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
    mscale *= 1.0f + 0.1f * logf(1.0f / args.freq_scale);
  }
  const float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
  const int stride = args.style == RopeStyle::kNormal ? 2 : 1;
  const int offset = args.style == RopeStyle::kNormal ? 1 : half;
  float* pair = x + head * head_dim + i * stride;
  const float x0 = pair[0], x1 = pair[offset];
  pair[0] = x0 * c - x1 * s;
  pair[offset] = x0 * s + x1 * c;
}

__global__ void add_bias_kernel(float* x, const float* __restrict__ bias, int64_t n, int64_t dim) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += bias[i % dim];
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  out[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void geglu_kernel(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  // note: the CPU's (llama.cpp's) GELU: of the f16-rounded gate, rounded to f16, exact outside (-10, 10).
  float gelu = g;
  if (g <= -10.0f) {
    gelu = 0.0f;
  } else if (g < 10.0f) {
    const float h = __half2float(__float2half_rn(g));
    gelu = __half2float(__float2half_rn(0.5f * h * (1.0f + tanhf(0.7978845608f * h * (1.0f + 0.044715f * h * h)))));
  }
  out[i] = gelu * up[i];
}

__global__ void swiglu_clamped_kernel(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = fminf(gate[i], 7.0f);
  const float u = fminf(fmaxf(up[i], -7.0f), 7.0f);
  out[i] = g / (1.0f + expf(-1.702f * g)) * (u + 1.0f);
}

__global__ void scale_kernel(float* x, float factor, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= factor;
}

__global__ void gather_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ indices, int64_t n,
                                   int64_t dim, float* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * dim) return;
  out[i] = x[int64_t(indices[i / dim]) * dim + i % dim];
}

__global__ void scatter_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ slots, int64_t n,
                                    int64_t dim, float* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * dim) return;
  out[int64_t(slots[i / dim]) * dim + i % dim] = x[i];
}

// Each product rounded before the add, in top-k order, as the CPU backend combines.
__global__ void moe_combine_kernel(const float* __restrict__ expert_outputs, const float* __restrict__ weights,
                                   int64_t n_tokens, int n_used, int64_t dim, float* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * dim) return;
  const int64_t t = i / dim, d = i % dim;
  float sum = 0.0f;
  for (int k = 0; k < n_used; ++k) {
    const float product = expert_outputs[(t * n_used + k) * dim + d] * weights[t * n_used + k];
    sum = k == 0 ? product : sum + product;
  }
  out[i] = sum;
}

// Ties go to the lowest index.
__global__ void argmax_kernel(const float* __restrict__ x, int64_t n, int32_t* __restrict__ out) {
  __shared__ float best_values[kThreads];
  __shared__ int64_t best_indices[kThreads];
  const float* row = x + int64_t(blockIdx.x) * n;
  float best = -INFINITY;
  int64_t best_index = n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (row[i] > best || (best_index == n && !(row[i] < best))) best = row[i], best_index = i;
  }
  best_values[threadIdx.x] = best;
  best_indices[threadIdx.x] = best_index;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) {
      const float other = best_values[threadIdx.x + stride];
      const int64_t other_index = best_indices[threadIdx.x + stride];
      if (other > best_values[threadIdx.x] ||
          (other == best_values[threadIdx.x] && other_index < best_indices[threadIdx.x])) {
        best_values[threadIdx.x] = other;
        best_indices[threadIdx.x] = other_index;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = int32_t(best_indices[0] == n ? 0 : best_indices[0]);
}

}  // namespace

void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out,
             cudaStream_t stream) {
  if (n_rows == 0) return;
  rmsnorm_kernel<<<unsigned(n_rows), kThreads, 0, stream>>>(x, weight, eps, dim, out);
  SO_CUDA_LAUNCHED();
}

void rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
          const RopeParams& params, const float* freq_factors, cudaStream_t stream) {
  SO_CHECK(params.n_rot > 0 && params.n_rot % 2 == 0 && params.n_rot <= head_dim, "rope: n_rot ", params.n_rot,
           " must be even and in (0, head_dim=", head_dim, "]");
  RopeArgs args{params.style, params.n_rot, std::pow(params.theta_base, -2.0f / float(params.n_rot)),
                params.freq_scale, params.ext_factor, params.attn_factor, 0.0f, 0.0f};
  if (params.ext_factor != 0.0f) {
    auto dim_for = [&](float n_rotations) {
      return float(params.n_rot) *
             std::log(float(params.n_ctx_orig) / (n_rotations * 2.0f * std::numbers::pi_v<float>)) /
             (2.0f * std::log(params.theta_base));
    };
    args.corr_low = std::max(0.0f, std::floor(dim_for(params.beta_fast)));
    args.corr_high = std::min(float(params.n_rot - 1), std::ceil(dim_for(params.beta_slow)));
  }
  const int64_t n = n_tokens * n_heads * (params.n_rot / 2);
  if (n == 0) return;
  rope_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, positions, n_tokens, n_heads, head_dim, args, freq_factors);
  SO_CUDA_LAUNCHED();
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim, cudaStream_t stream) {
  const int64_t n = n_rows * dim;
  if (n == 0) return;
  add_bias_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, bias, n, dim);
  SO_CUDA_LAUNCHED();
}

void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, b, out, n);
  SO_CUDA_LAUNCHED();
}

void swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  SO_CUDA_LAUNCHED();
}

void geglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  geglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  SO_CUDA_LAUNCHED();
}

void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  swiglu_clamped_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  SO_CUDA_LAUNCHED();
}

void scale(float* x, float factor, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, factor, n);
  SO_CUDA_LAUNCHED();
}

void gather_rows(const float* x, const int32_t* indices, int64_t n, int64_t dim, float* out, cudaStream_t stream) {
  if (n * dim == 0) return;
  gather_rows_kernel<<<blocks_for(n * dim), kThreads, 0, stream>>>(x, indices, n, dim, out);
  SO_CUDA_LAUNCHED();
}

void scatter_rows(const float* x, const int32_t* slots, int64_t n, int64_t dim, float* out, cudaStream_t stream) {
  if (n * dim == 0) return;
  scatter_rows_kernel<<<blocks_for(n * dim), kThreads, 0, stream>>>(x, slots, n, dim, out);
  SO_CUDA_LAUNCHED();
}

void moe_combine(const float* expert_outputs, const float* weights, int64_t n_tokens, int n_used, int64_t dim,
                 float* out, cudaStream_t stream) {
  if (n_tokens * dim == 0) return;
  moe_combine_kernel<<<blocks_for(n_tokens * dim), kThreads, 0, stream>>>(expert_outputs, weights, n_tokens, n_used,
                                                                          dim, out);
  SO_CUDA_LAUNCHED();
}

void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out, cudaStream_t stream) {
  if (n_rows == 0) return;
  argmax_kernel<<<unsigned(n_rows), kThreads, 0, stream>>>(x, n, out);
  SO_CUDA_LAUNCHED();
}

}  // namespace so::cuda
