// Perf mode for the CPU kernels (Google Benchmark): matmul per weight dtype on SmolLM2-135M
// shapes, scalar vs AVX2 (and, for Q4_0 / Q4_1 / Q8_0, each integer-dot variant the CPU
// runs: avx2-maddubs, avx2-vnni, avx512-vnni), reporting GB/s of weights read and GFLOP/s;
// and one decode
// token's worth of matmuls over a whole model's distinct weights, as the forward pass reads
// them (the per-matrix cases keep one matrix hot in cache).
//
//   build/bench/kernels_bench --benchmark_filter=Matmul/Q4_1 --benchmark_repetitions=5
//
// Threads: SPECOFFLOAD_THREADS (default: physical cores).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul_driver.h"
#include "base/cpu_features.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace so::cpu {
namespace {

int bench_threads() {
  const char* env = std::getenv("SPECOFFLOAD_THREADS");
  return env ? std::atoi(env) : cpu_features().n_physical_cores;
}

ThreadPool& pool() {
  static ThreadPool instance(bench_threads());
  return instance;
}

// Random weights with valid scales (a quantizer would take longer than the benchmark).
struct Weight {
  AlignedBuffer bytes;
  TensorView view;
};

std::unique_ptr<Weight> random_weight(DType dtype, int64_t n_out, int64_t n_in, uint32_t seed) {
  auto weight = std::make_unique<Weight>();
  const int64_t row_bytes = dtype_row_bytes(dtype, n_in);
  weight->bytes.resize(n_out * row_bytes);
  uint8_t* data = weight->bytes.as<uint8_t>();
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i + 8 <= n_out * row_bytes; i += 8) {
    const uint64_t bits = rng();
    std::memcpy(data + i, &bits, 8);
  }
  const uint16_t scale = fp32_to_fp16(0.01f);
  const int64_t n_blocks = n_out * n_in / dtype_info(dtype).block_elements;
  for (int64_t b = 0; b < n_blocks; ++b) {
    switch (dtype) {
      case DType::kQ4_0:
        reinterpret_cast<BlockQ4_0*>(data)[b].d = scale;
        break;
      case DType::kQ4_1:
        reinterpret_cast<BlockQ4_1*>(data)[b].d = reinterpret_cast<BlockQ4_1*>(data)[b].m = scale;
        break;
      case DType::kQ8_0:
        reinterpret_cast<BlockQ8_0*>(data)[b].d = scale;
        break;
      case DType::kQ4_K:
        reinterpret_cast<BlockQ4_K*>(data)[b].d = reinterpret_cast<BlockQ4_K*>(data)[b].dmin = scale;
        break;
      case DType::kQ6_K:
        reinterpret_cast<BlockQ6_K*>(data)[b].d = scale;
        break;
      case DType::kQ5_0:
        reinterpret_cast<BlockQ5_0*>(data)[b].d = scale;
        break;
      case DType::kMXFP4:
        reinterpret_cast<BlockMXFP4*>(data)[b].e = 120;  // 2^-7
        break;
      case DType::kQ5_K:
        reinterpret_cast<BlockQ5_K*>(data)[b].d = reinterpret_cast<BlockQ5_K*>(data)[b].dmin = scale;
        break;
      case DType::kQ3_K:
        reinterpret_cast<BlockQ3_K*>(data)[b].d = scale;
        break;
      case DType::kQ2_K:
        reinterpret_cast<BlockQ2_K*>(data)[b].d = reinterpret_cast<BlockQ2_K*>(data)[b].dmin = scale;
        break;
      case DType::kF16:
        reinterpret_cast<uint16_t*>(data)[b] = fp32_to_fp16(static_cast<float>(b % 97) * 1e-3f);
        break;
      case DType::kBF16:
        reinterpret_cast<uint16_t*>(data)[b] = fp32_to_bf16(static_cast<float>(b % 97) * 1e-3f);
        break;
      case DType::kF32:
        reinterpret_cast<float*>(data)[b] = static_cast<float>(b % 97) * 1e-3f;
        break;
      default:
        break;
    }
  }
  weight->view = TensorView{dtype, Shape{n_out, n_in}, data};
  return weight;
}

std::vector<float> random_activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

const DType kDTypes[] = {DType::kQ4_1, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0,
                         DType::kMXFP4, DType::kQ5_K, DType::kQ3_K, DType::kQ2_K, DType::kF16, DType::kBF16,
                         DType::kF32};

// K-quant rows hold whole super-blocks of 256.
bool super_blocks(DType dtype) { return dtype_info(dtype).block_elements == 256; }

// SmolLM2-135M: dim 576, ffn 1536, 3 kv heads of 64, vocab 49152.
struct MatmulShape {
  const char* name;
  int64_t n_out, n_in;
};
const MatmulShape kShapes[] = {
    {"ffn_up", 1536, 576}, {"ffn_down", 576, 1536}, {"attn_q", 576, 576}, {"output", 49152, 576}};

// dot: for Q4_0 / Q4_1 / Q8_0 under AVX2, which integer dot product variant to time
// (bit-identical results); -1 lets Kernels pick the best.
void matmul_case(benchmark::State& state, DType dtype, MatmulShape shape, int64_t n_rows, Isa isa, int dot) {
  const int64_t n_in = super_blocks(dtype) ? (shape.n_in / 256 + 1) * 256 : shape.n_in;
  // note: K-quant rows need multiples of 256; 576 becomes 768 there (bytes are counted as read).
  const auto weight = random_weight(dtype, shape.n_out, n_in, 1);
  const std::vector<float> x = random_activations(n_rows * n_in, 2);
  std::vector<float> y(n_rows * shape.n_out);
  Kernels kernels(pool(), isa);
  MatmulWorkspace workspace;
  for (auto _ : state) {
    if (dot < 0) {
      kernels.matmul(workspace, weight->view, x.data(), n_rows, y.data());
    } else {
      float* const ys[1] = {y.data()};
      detail::run_matmul(pool(), detail::avx2_matmul_kernels(static_cast<detail::IntegerDot>(dot)), workspace,
                         std::span(&weight->view, 1), x.data(), n_rows, ys);
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = static_cast<double>(weight->view.bytes());
  const double flops = 2.0 * static_cast<double>(n_in * shape.n_out * n_rows);
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One decode step of SmolLM2-135M's matmuls for n_rows rows: 30 layers of q,k,v (one
// matmul_many), o, gate+up (one matmul_many), down, then the Q8_0 output head. Every layer
// has its own weights (96 MB for Q4_1), so they stream from memory as in a forward pass.
void model_case(benchmark::State& state, DType dtype, int64_t n_rows, Isa isa) {
  constexpr int kLayers = 30;
  constexpr int64_t kDim = 576, kKv = 192, kFfn = 1536, kVocab = 49152;
  const int64_t dim = super_blocks(dtype) ? 768 : kDim;  // K-quants need 256 | n_in
  struct Layer {
    std::unique_ptr<Weight> q, k, v, o, gate, up, down;
  };
  std::vector<Layer> layers(kLayers);
  double bytes = 0.0, flops = 0.0;
  uint32_t seed = 10;
  for (Layer& layer : layers) {
    layer.q = random_weight(dtype, dim, dim, seed++);
    layer.k = random_weight(dtype, kKv, dim, seed++);
    layer.v = random_weight(dtype, kKv, dim, seed++);
    layer.o = random_weight(dtype, dim, dim, seed++);
    layer.gate = random_weight(dtype, kFfn, dim, seed++);
    layer.up = random_weight(dtype, kFfn, dim, seed++);
    layer.down = random_weight(dtype, dim, kFfn, seed++);
    for (const Weight* w : {layer.q.get(), layer.k.get(), layer.v.get(), layer.o.get(), layer.gate.get(),
                            layer.up.get(), layer.down.get()}) {
      bytes += static_cast<double>(w->view.bytes());
      flops += 2.0 * static_cast<double>(w->view.shape.elements()) * n_rows;
    }
  }
  const auto output = random_weight(DType::kQ8_0, kVocab, dim, seed);
  bytes += static_cast<double>(output->view.bytes());
  flops += 2.0 * static_cast<double>(output->view.shape.elements()) * n_rows;

  const std::vector<float> x = random_activations(n_rows * kFfn, 3);
  std::vector<float> q(n_rows * dim), k(n_rows * kKv), v(n_rows * kKv), h(n_rows * dim), gate(n_rows * kFfn),
      up(n_rows * kFfn), logits(n_rows * kVocab);
  Kernels kernels(pool(), isa);
  MatmulWorkspace workspace;
  for (auto _ : state) {
    for (const Layer& layer : layers) {
      const TensorView qkv[3] = {layer.q->view, layer.k->view, layer.v->view};
      float* const qkv_out[3] = {q.data(), k.data(), v.data()};
      kernels.matmul_many(workspace, qkv, x.data(), n_rows, qkv_out);
      kernels.matmul(workspace, layer.o->view, x.data(), n_rows, h.data());
      const TensorView gate_up[2] = {layer.gate->view, layer.up->view};
      float* const gate_up_out[2] = {gate.data(), up.data()};
      kernels.matmul_many(workspace, gate_up, x.data(), n_rows, gate_up_out);
      kernels.matmul(workspace, layer.down->view, x.data(), n_rows, h.data());
    }
    kernels.matmul(workspace, output->view, x.data(), n_rows, logits.data());
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(n_rows), benchmark::Counter::kIsIterationInvariantRate);
}

// The small ops at SmolLM2 sizes; GB/s counts the bytes each op reads and writes.
enum class Op { kRmsnorm, kRope, kSwiglu, kSoftmax, kArgmax };

void op_case(benchmark::State& state, Op op, int64_t n_rows, Isa isa) {
  constexpr int64_t kDim = 576, kFfn = 1536, kHeads = 9, kHeadDim = 64, kVocab = 49152;
  const int64_t n = op == Op::kSwiglu ? kFfn : op == Op::kSoftmax || op == Op::kArgmax ? kVocab : kDim;
  std::vector<float> x = random_activations(n_rows * n, 5), w = random_activations(n_rows * n, 6), out(n_rows * n);
  std::vector<int32_t> positions(n_rows), indices(n_rows);
  for (int64_t i = 0; i < n_rows; ++i) positions[i] = static_cast<int32_t>(100 + i);
  RopeParams rope;
  rope.n_rot = kHeadDim;
  Kernels kernels(pool(), isa);
  double bytes = 0.0;
  for (auto _ : state) {
    switch (op) {
      case Op::kRmsnorm:
        kernels.rmsnorm(x.data(), w.data(), 1e-5f, n_rows, kDim, out.data());
        bytes = 12.0 * n_rows * kDim;
        break;
      case Op::kRope:
        kernels.rope(x.data(), positions, kHeads, kHeadDim, rope);
        bytes = 8.0 * n_rows * kHeads * kHeadDim;
        break;
      case Op::kSwiglu:
        kernels.swiglu(x.data(), w.data(), out.data(), n_rows * kFfn);
        bytes = 12.0 * n_rows * kFfn;
        break;
      case Op::kSoftmax:
        std::copy(w.begin(), w.end(), x.begin());  // keep the input from collapsing to one-hot
        kernels.softmax(x.data(), n_rows, kVocab);
        bytes = 16.0 * n_rows * kVocab;
        break;
      case Op::kArgmax:
        kernels.argmax(x.data(), n_rows, kVocab, indices.data());
        bytes = 4.0 * n_rows * kVocab;
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  std::vector<Isa> isas = {Isa::kScalar};
  if (detect_isa() == Isa::kAvx2) isas.push_back(Isa::kAvx2);
  for (Isa isa : isas) {
    for (DType dtype : kDTypes) {
      for (const MatmulShape& shape : kShapes) {
        for (int64_t n_rows : {1, 16, 32, 512}) {
          if (isa == Isa::kScalar && n_rows > 16) continue;   // minutes per case; the point is made at 16
          if (shape.n_out == 49152 && n_rows > 32) continue;  // the head runs on the last rows only
          const std::string name = std::string("Matmul/") + std::string(dtype_name(dtype)) + "/" + shape.name +
                                   "/rows:" + std::to_string(n_rows) + "/" + std::string(isa_name(isa));
          benchmark::RegisterBenchmark(name.c_str(), matmul_case, dtype, shape, n_rows, isa, -1)->UseRealTime();
          const bool q32 = dtype_info(dtype).block_elements == 32 && dtype != DType::kF32;
          const bool k512 = dtype == DType::kQ4_K || dtype == DType::kQ5_K || dtype == DType::kQ2_K || dtype == DType::kQ3_K;  // K-quants with an AVX-512 tile
          if (isa == Isa::kAvx2 && (q32 || k512)) {
            const CpuFeatures& f = cpu_features();
            const std::pair<detail::IntegerDot, bool> variants[] = {
                {detail::IntegerDot::kAvx2, true},
                {detail::IntegerDot::kAvxVnni, f.avx_vnni && q32},
                {detail::IntegerDot::kAvx512Vnni, detail::best_integer_dot() == detail::IntegerDot::kAvx512Vnni}};
            const char* names[] = {"avx2-maddubs", "avx2-vnni", "avx512-vnni"};
            for (const auto& [variant, runs] : variants) {
              if (!runs) continue;
              const std::string variant_name = name.substr(0, name.rfind('/') + 1) + names[static_cast<int>(variant)];
              benchmark::RegisterBenchmark(variant_name.c_str(), matmul_case, dtype, shape, n_rows, isa,
                                           static_cast<int>(variant))
                  ->UseRealTime();
            }
          }
        }
      }
      for (int64_t n_rows : {1, 16, 32}) {
        if (isa == Isa::kScalar && n_rows > 1) continue;
        const std::string name = std::string("Model/") + std::string(dtype_name(dtype)) +
                                 "/rows:" + std::to_string(n_rows) + "/" + std::string(isa_name(isa));
        benchmark::RegisterBenchmark(name.c_str(), model_case, dtype, n_rows, isa)->UseRealTime();
      }
    }
    const std::pair<Op, const char*> ops[] = {{Op::kRmsnorm, "rmsnorm"},
                                              {Op::kRope, "rope"},
                                              {Op::kSwiglu, "swiglu"},
                                              {Op::kSoftmax, "softmax"},
                                              {Op::kArgmax, "argmax"}};
    for (const auto& [op, op_name] : ops) {
      for (int64_t n_rows : {1, 512}) {
        if ((op == Op::kSoftmax || op == Op::kArgmax) && n_rows > 32) continue;
        const std::string name =
            std::string("Op/") + op_name + "/rows:" + std::to_string(n_rows) + "/" + std::string(isa_name(isa));
        benchmark::RegisterBenchmark(name.c_str(), op_case, op, n_rows, isa)->UseRealTime();
      }
    }
  }
}

}  // namespace
}  // namespace so::cpu

int main(int argc, char** argv) {
  so::cpu::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
