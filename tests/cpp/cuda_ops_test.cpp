// Every CUDA op against the CPU backend (the reference) over a grid of shapes and dtypes.
// Skips where the build has no CUDA backend or the machine has no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "kv/kv_cache.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace so {
namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA backend in this build or no GPU on this machine";
    BackendOptions options;
    options.kind = BackendKind::kCuda;
    auto backend = create_backend(options);
    ASSERT_TRUE(backend.ok()) << backend.status().to_string();
    gpu_ = std::move(backend).value();
  }

  // Host floats -> device buffer.
  Buffer to_device(const void* data, size_t bytes) {
    auto buffer = gpu_->allocate(bytes, MemoryKind::kDevice);
    EXPECT_TRUE(buffer.ok());
    gpu_->copy_to_device(buffer->data(), data, bytes);
    return std::move(buffer).value();
  }
  Buffer to_device(const std::vector<float>& x) { return to_device(x.data(), x.size() * sizeof(float)); }
  // A device buffer of n floats poisoned with NaN, so unwritten outputs show.
  Buffer poisoned(size_t n) {
    std::vector<float> nan(n, std::nanf(""));
    return to_device(nan);
  }
  std::vector<float> to_host(const Buffer& buffer, size_t n) {
    std::vector<float> out(n);
    gpu_->copy_to_host(out.data(), buffer.data(), n * sizeof(float));
    return out;
  }

  std::unique_ptr<Backend> gpu_;
  CpuBackend cpu_{CpuBackendOptions{2, 0}};
};

// ||a - b|| / ||b||; NaN anywhere fails.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// Random weights of `dtype`: floats converted, or random blocks with sane scales.
std::vector<uint8_t> random_weights(DType dtype, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  const int64_t row_bytes = dtype_row_bytes(dtype, n_in);
  std::vector<uint8_t> bytes(size_t(n_out * row_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  auto set_f16 = [&](size_t at, float value) {
    const uint16_t h = fp32_to_fp16(value);
    std::memcpy(&bytes[at], &h, 2);
  };
  if (dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16) {
    const std::vector<float> x = random_floats(size_t(n_out * n_in), rng, 0.05f);
    for (size_t i = 0; i < x.size(); ++i) {
      if (dtype == DType::kF32) {
        std::memcpy(&bytes[i * 4], &x[i], 4);
      } else {
        const uint16_t h = dtype == DType::kF16 ? fp32_to_fp16(x[i]) : fp32_to_bf16(x[i]);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    }
    return bytes;
  }
  for (uint8_t& b : bytes) b = uint8_t(byte(rng));
  const DTypeInfo& info = dtype_info(dtype);
  for (size_t block = 0; block < bytes.size() / size_t(info.block_bytes); ++block) {
    const size_t at = block * size_t(info.block_bytes);
    switch (dtype) {
      case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: set_f16(at, scale(rng)); break;
      case DType::kMXFP4: bytes[at] = uint8_t(119 + byte(rng) % 5); break;
      case DType::kQ4_1: set_f16(at, scale(rng)); set_f16(at + 2, -8 * scale(rng)); break;
      case DType::kQ4_K: case DType::kQ5_K: set_f16(at, scale(rng) / 4); set_f16(at + 2, scale(rng) / 4); break;
      case DType::kQ6_K: set_f16(at + 208, scale(rng) / 8); break;
      case DType::kQ2_K: set_f16(at + 80, scale(rng) / 4); set_f16(at + 82, scale(rng) / 4); break;
      case DType::kQ3_K: set_f16(at + 108, scale(rng) / 8); break;
      default: ADD_FAILURE() << "no generator for " << dtype_name(dtype);
    }
  }
  return bytes;
}

// Quantized weights meet Q8 activations on both backends with the same per-block
// arithmetic, so they agree to summation order; float weights are checked against f64 sums
// (cuBLAS paths round activations to f16/bf16).
TEST_F(CudaOps, MatmulMatchesCpuOverDtypesAndShapes) {
  std::mt19937 rng(7);
  const DType dtypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                          DType::kQ5_0, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4,
                          DType::kQ2_K, DType::kQ3_K};
  const int64_t shapes[][2] = {{64, 256}, {300, 512}, {1000, 2048}, {33, 4096}};
  const int64_t batch_sizes[] = {1, 2, 3, 8, 17, 40};
  for (DType dtype : dtypes) {
    const bool quantized = dtype_info(dtype).is_quantized;
    for (const auto& shape : shapes) {
      const int64_t n_out = shape[0], n_in = shape[1];
      const std::vector<uint8_t> w = random_weights(dtype, n_out, n_in, rng);
      Buffer device_w = to_device(w.data(), w.size());
      const TensorView host_view{dtype, Shape{n_out, n_in}, w.data()};
      std::vector<float> dequantized(size_t(n_out * n_in));
      for (int64_t o = 0; o < n_out; ++o) dequantize_row(dtype, host_view.row(o), dequantized.data() + o * n_in, n_in);
      for (int64_t n_rows : batch_sizes) {
        const std::vector<float> x = random_floats(size_t(n_rows * n_in), rng);
        std::vector<float> expected(size_t(n_rows * n_out));
        if (quantized) {
          cpu::reference::matmul(host_view, x.data(), n_rows, expected.data());
        } else {
          for (int64_t r = 0; r < n_rows; ++r) {
            for (int64_t o = 0; o < n_out; ++o) {
              double sum = 0;
              for (int64_t i = 0; i < n_in; ++i) sum += double(x[r * n_in + i]) * dequantized[o * n_in + i];
              expected[r * n_out + o] = float(sum);
            }
          }
        }
        Buffer device_x = to_device(x);
        Buffer y = poisoned(expected.size());
        const TensorView view{dtype, Shape{n_out, n_in}, device_w.data()};
        gpu_->matmul(view, device_x.as<float>(), n_rows, y.as<float>());
        const double error = relative_error(to_host(y, expected.size()), expected);
        const bool half_gemm = !quantized && dtype != DType::kF32 && n_rows > 8;
        const double tolerance = !half_gemm ? 1e-5 : dtype == DType::kBF16 ? 1e-2 : 2e-3;
        EXPECT_LT(error, tolerance) << dtype_name(dtype) << " " << n_out << "x" << n_in << " rows " << n_rows;
      }
    }
  }
}

TEST_F(CudaOps, NormsAndElementwiseMatchCpu) {
  std::mt19937 rng(11);
  for (int64_t dim : {64, 576, 4096}) {
    const int64_t n_rows = 5;
    const std::vector<float> x = random_floats(size_t(n_rows * dim), rng, 3.0f);
    const std::vector<float> b = random_floats(size_t(n_rows * dim), rng);
    const std::vector<float> weight = random_floats(size_t(dim), rng);
    Buffer dx = to_device(x), db = to_device(b), dw = to_device(weight);

    std::vector<float> expected(x.size());
    cpu::reference::rmsnorm(x.data(), weight.data(), 1e-5f, n_rows, dim, expected.data());
    Buffer out = poisoned(x.size());
    gpu_->rmsnorm(dx.as<float>(), dw.as<float>(), 1e-5f, n_rows, dim, out.as<float>());
    EXPECT_LT(relative_error(to_host(out, x.size()), expected), 1e-6) << "rmsnorm dim " << dim;

    for (size_t i = 0; i < x.size(); ++i) expected[i] = x[i] + b[i];
    gpu_->add(dx.as<float>(), db.as<float>(), out.as<float>(), int64_t(x.size()));
    EXPECT_EQ(to_host(out, x.size()), expected) << "add";

    cpu::reference::swiglu(x.data(), b.data(), expected.data(), int64_t(x.size()));
    gpu_->swiglu(dx.as<float>(), db.as<float>(), out.as<float>(), int64_t(x.size()));
    EXPECT_LT(relative_error(to_host(out, x.size()), expected), 1e-6) << "swiglu";

    for (int64_t r = 0; r < n_rows; ++r) {
      for (int64_t i = 0; i < dim; ++i) expected[r * dim + i] = x[r * dim + i] + weight[i];
    }
    Buffer in_place = to_device(x);
    gpu_->add_bias(in_place.as<float>(), dw.as<float>(), n_rows, dim);
    EXPECT_EQ(to_host(in_place, x.size()), expected) << "add_bias";

    const std::vector<int32_t> indices = {4, 0, 2, 2};
    std::vector<float> gathered;
    for (int32_t index : indices) gathered.insert(gathered.end(), x.begin() + index * dim, x.begin() + (index + 1) * dim);
    Buffer g = poisoned(gathered.size());
    gpu_->gather_rows(dx.as<float>(), indices, dim, g.as<float>());
    EXPECT_EQ(to_host(g, gathered.size()), gathered) << "gather_rows";
  }
}

TEST_F(CudaOps, ArgmaxAndEmbeddingMatchCpu) {
  std::mt19937 rng(13);
  const int64_t n_rows = 7, n = 49152;
  std::vector<float> x = random_floats(size_t(n_rows * n), rng);
  x[3 * n + 100] = 50.0f;  // a tie: the lower index wins
  x[3 * n + 40000] = 50.0f;
  std::vector<int32_t> expected(n_rows);
  cpu::reference::argmax(x.data(), n_rows, n, expected.data());
  Buffer dx = to_device(x);
  auto out = gpu_->allocate(n_rows * sizeof(int32_t), MemoryKind::kDevice);
  ASSERT_TRUE(out.ok());
  gpu_->argmax(dx.as<float>(), n_rows, n, out->as<int32_t>());
  std::vector<int32_t> got(n_rows);
  gpu_->copy_to_host(got.data(), out->data(), got.size() * sizeof(int32_t));
  EXPECT_EQ(got, expected);
  EXPECT_EQ(got[3], 100);

  // The table stays in host memory; rows are dequantized there and copied up.
  const int64_t n_vocab = 50, dim = 256;
  const std::vector<uint8_t> table = random_weights(DType::kQ8_0, n_vocab, dim, rng);
  const TensorView view{DType::kQ8_0, Shape{n_vocab, dim}, table.data()};
  const std::vector<int32_t> tokens = {3, 49, 0, 3};
  std::vector<float> rows(tokens.size() * dim);
  cpu::reference::embedding(view, tokens, rows.data());
  Buffer e = poisoned(rows.size());
  gpu_->embedding(view, tokens, e.as<float>());
  EXPECT_EQ(to_host(e, rows.size()), rows);
}

TEST_F(CudaOps, RopeMatchesCpuInEveryStyle) {
  std::mt19937 rng(17);
  const int64_t n_heads = 6, head_dim = 64;
  const std::vector<int32_t> positions = {0, 1, 7, 300, 4095};
  std::vector<float> factors(head_dim / 2);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + float(i) / 8;
  for (int variant = 0; variant < 4; ++variant) {
    RopeParams params;
    params.style = variant % 2 ? RopeStyle::kNeox : RopeStyle::kNormal;
    params.n_rot = variant == 1 ? 32 : int(head_dim);
    params.theta_base = 10000.0f;
    if (variant == 2) {  // YaRN
      params.freq_scale = 0.25f;
      params.ext_factor = 1.0f;
      params.attn_factor = 1.0f;
      params.n_ctx_orig = 4096;
    }
    if (variant == 3) params.freq_factors = factors.data();  // llama3 scaling
    std::vector<float> x = random_floats(positions.size() * n_heads * head_dim, rng);
    Buffer dx = to_device(x);
    cpu::reference::rope(x.data(), positions, n_heads, head_dim, params);
    gpu_->rope(dx.as<float>(), positions, n_heads, head_dim, params);
    EXPECT_LT(relative_error(to_host(dx, x.size()), x), 1e-5) << "variant " << variant;
  }
}

// Ragged rows over several pages, GQA, and the k+1 verification queries of a row.
TEST_F(CudaOps, PagedAttentionMatchesCpu) {
  std::mt19937 rng(19);
  struct Case {
    int n_heads, n_kv_heads, head_dim, page_tokens;
    std::vector<int> history, new_tokens;
    bool values_in_keys = false;  // DeepSeek's latent: one KV head of 576, its keys its values
  };
  const Case cases[] = {
      {9, 3, 64, 16, {0, 5, 40}, {7, 1, 5}},
      {32, 8, 128, 256, {300, 0, 1000}, {1, 12, 7}},
      {4, 4, 64, 32, {95, 64}, {1, 33}},
      {16, 1, 576, 16, {0, 37}, {6, 3}, true},
  };
  for (const Case& c : cases) {
    KvGeometry geometry;
    geometry.n_layers = 2;
    geometry.n_kv_heads = c.n_kv_heads;
    geometry.head_dim = c.head_dim;
    geometry.page_tokens = c.page_tokens;
    geometry.dtype = DType::kF16;
    geometry.values_in_keys = c.values_in_keys;
    AttentionParams params{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
    KvCache cpu_kv(cpu_, geometry, 0), gpu_kv(*gpu_, geometry, 0);
    const int kv_dim = c.n_kv_heads * c.head_dim;
    std::vector<AttentionRow> cpu_rows, gpu_rows;
    int32_t n_tokens = 0;
    for (size_t r = 0; r < c.history.size(); ++r) {
      const int32_t cpu_row = cpu_kv.add_row(), gpu_row = gpu_kv.add_row();
      if (c.history[r] > 0) {
        ASSERT_TRUE(cpu_kv.reserve(cpu_row, c.history[r]).ok());
        ASSERT_TRUE(gpu_kv.reserve(gpu_row, c.history[r]).ok());
        const std::vector<float> k = random_floats(size_t(c.history[r]) * kv_dim, rng);
        const std::vector<float> v = c.values_in_keys ? k : random_floats(k.size(), rng);
        Buffer dk = to_device(k), dv = to_device(v);
        const AttentionRow cpu_view = cpu_kv.attention_row(cpu_row, 0, c.history[r]);
        const AttentionRow gpu_view = gpu_kv.attention_row(gpu_row, 0, c.history[r]);
        cpu_.kv_store(geometry, 1, std::span(&cpu_view, 1), k.data(), v.data());
        gpu_->kv_store(geometry, 1, std::span(&gpu_view, 1), dk.as<float>(), dv.as<float>());
        cpu_kv.advance(cpu_row, c.history[r]);
        gpu_kv.advance(gpu_row, c.history[r]);
      }
      ASSERT_TRUE(cpu_kv.reserve(cpu_row, c.new_tokens[r]).ok());
      ASSERT_TRUE(gpu_kv.reserve(gpu_row, c.new_tokens[r]).ok());
      cpu_rows.push_back(cpu_kv.attention_row(cpu_row, n_tokens, c.new_tokens[r]));
      gpu_rows.push_back(gpu_kv.attention_row(gpu_row, n_tokens, c.new_tokens[r]));
      n_tokens += c.new_tokens[r];
    }
    const std::vector<float> k = random_floats(size_t(n_tokens) * kv_dim, rng);
    const std::vector<float> v = c.values_in_keys ? k : random_floats(k.size(), rng);
    const std::vector<float> q = random_floats(size_t(n_tokens) * c.n_heads * c.head_dim, rng);
    Buffer dk = to_device(k), dv = to_device(v), dq = to_device(q);
    std::vector<float> expected(q.size());
    cpu_.kv_store(geometry, 1, cpu_rows, k.data(), v.data());
    cpu_.attention(geometry, 1, cpu_rows, params, q.data(), expected.data());
    Buffer out = poisoned(q.size());
    gpu_->kv_store(geometry, 1, gpu_rows, dk.as<float>(), dv.as<float>());
    gpu_->attention(geometry, 1, gpu_rows, params, dq.as<float>(), out.as<float>());
    // Same numerics as the CPU (f16 q and probabilities); sums differ only in order.
    EXPECT_LT(relative_error(to_host(out, q.size()), expected), 1e-4)
        << c.n_heads << " heads, " << c.n_kv_heads << " kv heads, head dim " << c.head_dim;
  }
}

TEST_F(CudaOps, MoeFfnMatchesCpu) {
  std::mt19937 rng(23);
  const int n_experts = 8, n_used = 2;
  const int64_t dim = 256, ffn_dim = 512;
  for (DType dtype : {DType::kF32, DType::kQ8_0}) {
    std::vector<std::vector<uint8_t>> host;
    std::vector<Buffer> device;
    auto make = [&](int64_t rows, int64_t cols) {
      host.push_back(random_weights(dtype == DType::kQ8_0 && rows == n_experts ? DType::kF32 : dtype, rows, cols, rng));
      device.push_back(to_device(host.back().data(), host.back().size()));
    };
    make(n_experts, dim);  // router (f32)
    for (int e = 0; e < n_experts; ++e) make(ffn_dim, dim), make(ffn_dim, dim), make(dim, ffn_dim);
    auto views = [&](bool on_device) {
      std::vector<TensorView> v;
      for (size_t i = 0; i < host.size(); ++i) {
        const bool router = i == 0;
        const int64_t rows = router ? n_experts : (i - 1) % 3 == 2 ? dim : ffn_dim;
        const int64_t cols = router ? dim : (i - 1) % 3 == 2 ? ffn_dim : dim;
        v.push_back({router ? DType::kF32 : dtype, Shape{rows, cols}, on_device ? device[i].data() : host[i].data()});
      }
      return v;
    };
    const std::vector<TensorView> cpu_views = views(false), gpu_views = views(true);
    auto moe = [&](const std::vector<TensorView>& v, std::vector<TensorView>& gate, std::vector<TensorView>& up,
                   std::vector<TensorView>& down) {
      for (int e = 0; e < n_experts; ++e) {
        gate.push_back(v[1 + 3 * e]);
        up.push_back(v[2 + 3 * e]);
        down.push_back(v[3 + 3 * e]);
      }
      return MoeWeights{v[0], gate, up, down, n_used, true};
    };
    std::vector<TensorView> cg, cu, cd, gg, gu, gd;
    const MoeWeights cpu_moe = moe(cpu_views, cg, cu, cd), gpu_moe = moe(gpu_views, gg, gu, gd);
    for (int64_t n_tokens : {1, 5, 64}) {
      const std::vector<float> x = random_floats(size_t(n_tokens * dim), rng);
      std::vector<float> expected(x.size());
      cpu_.moe_ffn(cpu_moe, x.data(), n_tokens, dim, ffn_dim, expected.data());
      Buffer dx = to_device(x), out = poisoned(x.size());
      gpu_->moe_ffn(gpu_moe, dx.as<float>(), n_tokens, dim, ffn_dim, out.as<float>());
      EXPECT_LT(relative_error(to_host(out, x.size()), expected), 1e-4)
          << dtype_name(dtype) << " tokens " << n_tokens;
    }
  }
}

TEST_F(CudaOps, DeviceBudgetIsAHardCap) {
  BackendOptions options;
  options.kind = BackendKind::kCuda;
  options.gpu_memory_bytes = 64 << 20;
  auto small = create_backend(options);
  ASSERT_TRUE(small.ok()) << small.status().to_string();
  auto fits = (*small)->allocate(32 << 20, MemoryKind::kDevice);
  EXPECT_TRUE(fits.ok());
  auto over = (*small)->allocate(40 << 20, MemoryKind::kDevice);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().to_string().find("--gpu-mem"), std::string::npos) << over.status().to_string();
}

TEST(CudaAvailability, NoDeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present; this checks the message where none is";
  BackendOptions options;
  options.kind = BackendKind::kCuda;
  auto backend = create_backend(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().to_string().find("--backend cpu"), std::string::npos) << backend.status().to_string();
}

}  // namespace
}  // namespace so
