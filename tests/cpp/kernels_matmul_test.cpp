// Matmul on every ISA against the scalar reference over a grid of shapes, and batch
// invariance: a row's outputs are bit-identical alone and inside any batch, at any position,
// with any thread count, through matmul, matmul_many and matmul_groups.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/matmul_driver.h"
#include "kernels_test_util.h"

namespace so::cpu {
namespace {

using testing::make_weight;
using testing::random_floats;
using testing::runnable_isas;

// Bounds on max|y - y_ref| / max|y_ref| (about 4x above the worst seen over the grid).
// The quantized dtypes share the activation quantization and the exact integer block sums
// with the reference, so only the order of the float accumulation differs: per 32-block
// terms for Q4_0/Q4_1/Q8_0. The K-quants take the same float steps per 256-block as the
// reference (add_kquant_block) and must equal it bit for bit. The float dtypes accumulate in
// f32 lanes where the reference sums in double.
double error_bound(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return 2e-5;
    default:
      return 1e-5;
  }
}

bool is_k_quant(DType dtype) {
  return dtype == DType::kQ2_K || dtype == DType::kQ3_K || dtype == DType::kQ4_K || dtype == DType::kQ5_K ||
         dtype == DType::kQ6_K;
}

std::vector<float> run_matmul(Kernels& kernels, const TensorView& weight, const std::vector<float>& x, int64_t n_rows) {
  MatmulWorkspace workspace;
  std::vector<float> y(n_rows * weight.shape[0]);
  kernels.matmul(workspace, weight, x.data(), n_rows, y.data());
  return y;
}

TEST(Matmul, MatchesReferenceOverShapes) {
  const int64_t n_rows_grid[] = {1, 2, 3, 4, 5, 7, 8, 16, 33, 64};
  for (DType dtype : testing::weight_dtypes()) {
    double worst = 0.0;
    const int64_t block = testing::block_of(dtype);
    for (int64_t n_in : {block, 2 * block, 3 * block}) {
      for (int64_t n_out : {1, 3, 17, 64, 581}) {
        const testing::TestWeight weight = make_weight(dtype, n_out, n_in, static_cast<uint32_t>(n_in + n_out));
        for (int64_t n_rows : n_rows_grid) {
          const std::vector<float> x = random_floats(n_rows * n_in, static_cast<uint32_t>(n_rows));
          std::vector<float> expected(n_rows * n_out);
          reference::matmul(weight.view, x.data(), n_rows, expected.data());
          for (Isa isa : runnable_isas()) {
            ThreadPool pool(2);
            Kernels kernels(pool, isa);
            const std::vector<float> y = run_matmul(kernels, weight.view, x, n_rows);
            const double error = testing::normalized_error(y.data(), expected.data(), y.size());
            worst = std::max(worst, error);
            EXPECT_LE(error, error_bound(dtype)) << dtype_name(dtype) << " " << isa_name(isa) << " n_in " << n_in
                                                 << " n_out " << n_out << " n_rows " << n_rows;
            if (isa == Isa::kScalar || is_k_quant(dtype)) {
              EXPECT_TRUE(testing::bitwise_equal(y.data(), expected.data(), y.size()))
                  << "must equal the reference bit for bit: " << dtype_name(dtype) << " " << isa_name(isa)
                  << " n_in " << n_in << " n_out " << n_out << " n_rows " << n_rows;
            }
          }
        }
      }
    }
    RecordProperty(std::string("worst_error_") + std::string(dtype_name(dtype)), std::to_string(worst));
    std::printf("%s worst normalized error %.3g\n", std::string(dtype_name(dtype)).c_str(), worst);
  }
}

TEST(Matmul, LargeShapesMatchReference) {
  // SmolLM2-like shapes: the chunking over threads and row blocks is exercised for real.
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t n_in = 768, n_out = 1536 + 5, n_rows = 70;
    if (n_in % testing::block_of(dtype) != 0) continue;
    const testing::TestWeight weight = make_weight(dtype, n_out, n_in, 99);
    const std::vector<float> x = random_floats(n_rows * n_in, 5);
    std::vector<float> expected(n_rows * n_out);
    reference::matmul(weight.view, x.data(), n_rows, expected.data());
    for (Isa isa : runnable_isas()) {
      ThreadPool pool(2);
      Kernels kernels(pool, isa);
      const std::vector<float> y = run_matmul(kernels, weight.view, x, n_rows);
      EXPECT_LE(testing::normalized_error(y.data(), expected.data(), y.size()), error_bound(dtype))
          << dtype_name(dtype) << " " << isa_name(isa);
      if (is_k_quant(dtype)) {  // 70 rows: the decoded panels of every K-quant
        EXPECT_TRUE(testing::bitwise_equal(y.data(), expected.data(), y.size())) << dtype_name(dtype) << " " << isa_name(isa);
      }
    }
  }
}

TEST(Matmul, BatchInvariantBitForBit) {
  const int64_t n_out = 64 + 13;
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t n_in = testing::block_of(dtype) == 256 ? 512 : 96;
    const testing::TestWeight weight = make_weight(dtype, n_out, n_in, 3);
    const std::vector<float> probe = random_floats(n_in, 11);
    for (Isa isa : runnable_isas()) {
      for (int n_threads : {1, 2}) {
        ThreadPool pool(n_threads);
        Kernels kernels(pool, isa);
        const std::vector<float> alone = run_matmul(kernels, weight.view, probe, 1);
        // The scalar kernels compute each output on its own, so a few sizes cover them.
        for (int64_t batch = 2; batch <= 70; batch += isa == Isa::kScalar ? 17 : 1) {
          std::vector<float> x = random_floats(batch * n_in, static_cast<uint32_t>(100 + batch));
          for (int64_t position : {int64_t{0}, batch / 2, batch - 1}) {
            std::vector<float> xb = x;
            std::copy(probe.begin(), probe.end(), xb.begin() + position * n_in);
            const std::vector<float> y = run_matmul(kernels, weight.view, xb, batch);
            ASSERT_TRUE(testing::bitwise_equal(y.data() + position * n_out, alone.data(), n_out))
                << dtype_name(dtype) << " " << isa_name(isa) << " threads " << n_threads << " batch " << batch
                << " position " << position;
          }
        }
      }
    }
  }
}

TEST(Matmul, ThreadCountDoesNotChangeResults) {
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t n_in = 512, n_out = 1000, n_rows = 37;
    const testing::TestWeight weight = make_weight(dtype, n_out, n_in, 21);
    const std::vector<float> x = random_floats(n_rows * n_in, 22);
    for (Isa isa : runnable_isas()) {
      std::vector<float> first;
      for (int n_threads : {1, 2, 3}) {
        ThreadPool pool(n_threads);
        Kernels kernels(pool, isa);
        const std::vector<float> y = run_matmul(kernels, weight.view, x, n_rows);
        if (first.empty()) {
          first = y;
        } else {
          EXPECT_TRUE(testing::bitwise_equal(y.data(), first.data(), y.size()))
              << dtype_name(dtype) << " " << isa_name(isa) << " threads " << n_threads;
        }
      }
    }
  }
}

TEST(Matmul, ManyEqualsSeparateMatmuls) {
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t n_in = 512;
    const int64_t n_outs[] = {64, 17, 200};
    std::vector<testing::TestWeight> weights;
    std::vector<TensorView> views;
    for (int i = 0; i < 3; ++i) {
      weights.push_back(make_weight(dtype, n_outs[i], n_in, 30 + i));
      views.push_back(weights.back().view);
    }
    for (Isa isa : runnable_isas()) {
      ThreadPool pool(2);
      Kernels kernels(pool, isa);
      for (int64_t n_rows : {1, 5, 40}) {
        const std::vector<float> x = random_floats(n_rows * n_in, 40);
        std::vector<std::vector<float>> outputs(3);
        std::vector<float*> ys;
        for (int i = 0; i < 3; ++i) {
          outputs[i].resize(n_rows * n_outs[i]);
          ys.push_back(outputs[i].data());
        }
        MatmulWorkspace workspace;
        kernels.matmul_many(workspace, views, x.data(), n_rows, ys);
        for (int i = 0; i < 3; ++i) {
          const std::vector<float> separate = run_matmul(kernels, views[i], x, n_rows);
          EXPECT_TRUE(testing::bitwise_equal(outputs[i].data(), separate.data(), separate.size()))
              << dtype_name(dtype) << " " << isa_name(isa) << " weight " << i << " n_rows " << n_rows;
        }
      }
    }
  }
}

// MoE experts: groups of their own rows (none, one, many past a row block) in one call give each group's
// matmul bit for bit.
TEST(Matmul, GroupsEqualSeparateMatmuls) {
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t n_in = 512;
    const int64_t n_outs[] = {64, 17, 200, 40};
    const int64_t n_rows[] = {1, 0, 70, 3};
    std::vector<testing::TestWeight> weights;
    std::vector<std::vector<float>> xs;
    for (int i = 0; i < 4; ++i) {
      weights.push_back(make_weight(dtype, n_outs[i], n_in, 60 + i));
      xs.push_back(random_floats(n_rows[i] * n_in, 70 + i));
    }
    for (Isa isa : runnable_isas()) {
      ThreadPool pool(2);
      Kernels kernels(pool, isa);
      std::vector<std::vector<float>> outputs(4);
      std::vector<MatmulGroup> groups;
      for (int i = 0; i < 4; ++i) {
        outputs[i].assign(n_rows[i] * n_outs[i], -1.0f);
        groups.push_back({weights[i].view, xs[i].data(), n_rows[i], outputs[i].data()});
      }
      MatmulWorkspace workspace;
      kernels.matmul_groups(workspace, groups);
      for (int i = 0; i < 4; ++i) {
        if (n_rows[i] == 0) continue;  // nothing to compare (and no buffer to hand memcmp)
        const std::vector<float> separate = run_matmul(kernels, weights[i].view, xs[i], n_rows[i]);
        EXPECT_TRUE(testing::bitwise_equal(outputs[i].data(), separate.data(), separate.size()))
            << dtype_name(dtype) << " " << isa_name(isa) << " group " << i << " n_rows " << n_rows[i];
      }
    }
  }
}

// The VNNI and AVX-512 integer dot products must reproduce the plain AVX2 kernels exactly.
TEST(Matmul, IntegerDotVariantsEqualPlainAvx2BitForBit) {
  if (!testing::cpu_runs(Isa::kAvx2)) GTEST_SKIP() << "no AVX2";
  const CpuFeatures& f = cpu_features();
  std::vector<detail::IntegerDot> variants;
  if (f.avx_vnni) variants.push_back(detail::IntegerDot::kAvxVnni);
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) {
    variants.push_back(detail::IntegerDot::kAvx512Vnni);
  }
  if (variants.empty()) GTEST_SKIP() << "neither AVX-VNNI nor AVX512-VNNI";
  ThreadPool pool(2);
  for (DType dtype : testing::weight_dtypes()) {
    for (int64_t n_out : {1, 7, 133}) {
      const int64_t n_in = 768;
      const testing::TestWeight weight = make_weight(dtype, n_out, n_in, 50);
      for (int64_t n_rows : {1, 3, 9, 70}) {
        const std::vector<float> x = random_floats(n_rows * n_in, 51, 3.0f);
        std::vector<float> plain(n_rows * n_out);
        MatmulWorkspace workspace;
        float* plain_out[1] = {plain.data()};
        detail::run_matmul(pool, detail::avx2_matmul_kernels(detail::IntegerDot::kAvx2), workspace,
                           std::span(&weight.view, 1), x.data(), n_rows, plain_out);
        for (detail::IntegerDot variant : variants) {
          std::vector<float> other(n_rows * n_out);
          float* other_out[1] = {other.data()};
          detail::run_matmul(pool, detail::avx2_matmul_kernels(variant), workspace, std::span(&weight.view, 1),
                             x.data(), n_rows, other_out);
          EXPECT_TRUE(testing::bitwise_equal(plain.data(), other.data(), plain.size()))
              << dtype_name(dtype) << " variant " << static_cast<int>(variant) << " n_out " << n_out << " n_rows "
              << n_rows;
        }
      }
    }
  }
}

}  // namespace
}  // namespace so::cpu
