// The paged KV cache on the device: writing a step's keys and values, and attention over
// ragged rows (each token sees positions 0 .. visible-1 of its row's pages).
#include <cuda_fp16.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace so::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// Byte offsets inside a page, as KvGeometry::offset computes them on the host.
struct PageLayout {
  int page_tokens;
  int64_t head_slab_bytes;
  int64_t key_offset;    // layer's K block; add kv_head * head_slab_bytes
  int64_t value_offset;  // layer's V block
};

PageLayout page_layout(const KvGeometry& g, int layer) {
  return {g.page_tokens, g.head_slab_bytes(), g.offset(layer, false, 0), g.offset(layer, true, 0)};
}

__global__ void kv_store_kernel(PageLayout layout, const TokenKv* __restrict__ tokens,
                                const uint8_t* const* __restrict__ pages, int64_t n_tokens, int n_kv_heads,
                                int head_dim, const float* __restrict__ k, const float* __restrict__ v) {
  const int64_t kv_dim = int64_t(n_kv_heads) * head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * kv_dim) return;
  const int64_t token = i / kv_dim;
  const int kv_head = int((i % kv_dim) / head_dim), d = int(i % head_dim);
  const int position = tokens[token].visible - 1;
  const uint8_t* page = pages[tokens[token].page_base + position / layout.page_tokens];
  const int64_t slot = int64_t(kv_head) * layout.head_slab_bytes + int64_t(position % layout.page_tokens) * head_dim * 2 + d * 2;
  *reinterpret_cast<__half*>(const_cast<uint8_t*>(page) + layout.key_offset + slot) = __float2half_rn(k[i]);
  *reinterpret_cast<__half*>(const_cast<uint8_t*>(page) + layout.value_offset + slot) = __float2half_rn(v[i]);
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
  return value;
}

// One warp per (token, query head), with the CPU's numerics (llama.cpp's non-flash path):
// q rounded to f16, scores in f32, softmax with the sum of exponentials in double and the
// probabilities rounded to f16, values accumulated position by position in f32. Three
// sweeps over the keys (max, sum, values); in each, lane j scores position base + j against
// the whole query, and in the last every lane then accumulates its dims (lane + 32 e) over
// the tile's values.
template <int E>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) attention_kernel(
    PageLayout layout, const TokenKv* __restrict__ tokens, const uint8_t* const* __restrict__ pages,
    int64_t n_tokens, int n_heads, int n_kv_heads, float scale, int window, const float* __restrict__ sinks,
    const float* __restrict__ q, float* __restrict__ out) {
  constexpr int D = 32 * E;
  __shared__ float q_shared[kWarpsPerBlock][D];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
  if (item >= n_tokens * n_heads) return;
  const int64_t token = item / n_heads;
  const int head = int(item % n_heads);
  const int kv_head = head / (n_heads / n_kv_heads);
  float* qs = q_shared[warp];
#pragma unroll
  for (int e = 0; e < E; ++e) qs[lane + 32 * e] = __half2float(__float2half_rn(q[item * D + lane + 32 * e]));
  __syncwarp();

  const TokenKv kv = tokens[token];
  const uint8_t* const* row_pages = pages + kv.page_base;
  const int64_t key_offset = layout.key_offset + kv_head * layout.head_slab_bytes;
  const int64_t value_offset = layout.value_offset + kv_head * layout.head_slab_bytes;
  auto scaled_score = [&](int position) {
    const uint8_t* page = row_pages[position / layout.page_tokens];
    const uint4* key = reinterpret_cast<const uint4*>(page + key_offset + int64_t(position % layout.page_tokens) * D * 2);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const uint4 u = key[i];
      const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 f = __half22float2(h[j]);
        dot += qs[8 * i + 2 * j] * f.x + qs[8 * i + 2 * j + 1] * f.y;
      }
    }
    return dot * scale;
  };

  const int first = window > 0 ? max(0, kv.visible - window) : 0;  // sliding layers see the last `window`
  // A sink (gpt-oss) is one more logit in the softmax, with no value.
  const float sink = sinks != nullptr ? sinks[head] : -INFINITY;
  float max_score = lane == 0 ? sink : -INFINITY;
  for (int position = first + lane; position < kv.visible; position += 32) {
    max_score = fmaxf(max_score, scaled_score(position));
  }
  max_score = warp_max(max_score);
  double sum = lane == 0 && sinks != nullptr ? double(expf(sink - max_score)) : 0.0;
  for (int position = first + lane; position < kv.visible; position += 32) {
    sum += double(expf(scaled_score(position) - max_score));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
  const float inverse = float(1.0 / sum);

  float acc[E];
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0f;
  for (int base = first; base < kv.visible; base += 32) {
    const int position = base + lane;
    const float probability =
        position < kv.visible ? __half2float(__float2half_rn(expf(scaled_score(position) - max_score) * inverse)) : 0.0f;
    const int n_valid = min(32, kv.visible - base);
    for (int j = 0; j < n_valid; ++j) {
      const float p = __shfl_sync(0xFFFFFFFFu, probability, j);
      const int at = base + j;
      const __half* value = reinterpret_cast<const __half*>(row_pages[at / layout.page_tokens] + value_offset +
                                                            int64_t(at % layout.page_tokens) * D * 2);
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] += p * __half2float(value[lane + 32 * e]);
    }
  }
#pragma unroll
  for (int e = 0; e < E; ++e) out[item * D + lane + 32 * e] = acc[e];
}

template <int E>
void launch_attention(const PageLayout& layout, const TokenKv* tokens, const uint8_t* const* pages, int64_t n_tokens,
                      const AttentionParams& params, const float* q, float* out, cudaStream_t stream) {
  const int64_t items = n_tokens * params.n_heads;
  attention_kernel<E><<<unsigned((items + kWarpsPerBlock - 1) / kWarpsPerBlock), 32 * kWarpsPerBlock, 0, stream>>>(
      layout, tokens, pages, n_tokens, params.n_heads, params.n_kv_heads, params.scale, params.window, params.sinks, q,
      out);
  SO_CUDA_LAUNCHED();
}

}  // namespace

void kv_store(const KvGeometry& geometry, int layer, const TokenKv* tokens, const uint8_t* const* pages,
              int64_t n_tokens, const float* k, const float* v, cudaStream_t stream) {
  SO_CHECK(geometry.dtype == DType::kF16, "the CUDA KV cache holds F16, not ", dtype_name(geometry.dtype));
  const int64_t n = n_tokens * geometry.n_kv_heads * geometry.head_dim;
  if (n == 0) return;
  const int threads = 256;
  kv_store_kernel<<<unsigned((n + threads - 1) / threads), threads, 0, stream>>>(
      page_layout(geometry, layer), tokens, pages, n_tokens, geometry.n_kv_heads, geometry.head_dim, k, v);
  SO_CUDA_LAUNCHED();
}

void attention(const KvGeometry& geometry, int layer, const TokenKv* tokens, const uint8_t* const* pages,
               int64_t n_tokens, const AttentionParams& params, const float* q, float* out, cudaStream_t stream) {
  SO_CHECK(geometry.dtype == DType::kF16, "the CUDA KV cache holds F16, not ", dtype_name(geometry.dtype));
  SO_CHECK(params.n_kv_heads > 0 && params.n_heads % params.n_kv_heads == 0, "attention: ", params.n_heads,
           " query heads do not group over ", params.n_kv_heads, " KV heads");
  if (n_tokens == 0) return;
  const PageLayout layout = page_layout(geometry, layer);
  switch (params.head_dim) {
    case 32: return launch_attention<1>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 64: return launch_attention<2>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 96: return launch_attention<3>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 128: return launch_attention<4>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 160: return launch_attention<5>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 192: return launch_attention<6>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 256: return launch_attention<8>(layout, tokens, pages, n_tokens, params, q, out, stream);
    case 576: return launch_attention<18>(layout, tokens, pages, n_tokens, params, q, out, stream);  // DeepSeek MLA
    default:
      SO_CHECK(false, "the CUDA attention kernel takes head dims of 32, 64, 96, 128, 160, 192, 256 or 576, not ",
               params.head_dim);
  }
}

}  // namespace so::cuda
