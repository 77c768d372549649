#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/cpu_backend.h"
#include "base/cpu_features.h"
#include "kv/kv_cache.h"
#include "tensor/fp16.h"

namespace so {
namespace {

struct Problem {
  KvGeometry geometry;
  AttentionParams params;
  std::vector<int> kv_starts;  // cached positions per row
  std::vector<int> n_tokens;   // new tokens per row
};

// Fills a KV cache with random history and new K/V for the step; returns q.
struct Fixture {
  CpuBackend backend{CpuBackendOptions{2, 0}};
  std::unique_ptr<KvCache> kv;
  std::vector<int32_t> kv_rows;
  std::vector<AttentionRow> rows;
  std::vector<float> q;
  int64_t n_tokens = 0;

  Fixture(const Problem& p, uint32_t seed) {
    kv = std::make_unique<KvCache>(backend, p.geometry, 0);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    const int kv_dim = p.geometry.n_kv_heads * p.geometry.head_dim;
    for (size_t r = 0; r < p.kv_starts.size(); ++r) {
      const int32_t row = kv->add_row();
      kv_rows.push_back(row);
      // History: store it as a step of its own.
      const int history = p.kv_starts[r];
      if (history > 0) {
        EXPECT_TRUE(kv->reserve(row, history).ok());
        std::vector<float> k(size_t(history) * kv_dim), v(k.size());
        for (auto& x : k) x = normal(rng);
        for (auto& x : v) x = normal(rng);
        AttentionRow view = kv->attention_row(row, 0, history);
        cpu::kv_store(p.geometry, 0, std::span(&view, 1), k.data(), v.data(), backend.pool());
        kv->advance(row, history);
      }
    }
    std::vector<float> k, v;
    for (size_t r = 0; r < p.kv_starts.size(); ++r) {
      EXPECT_TRUE(kv->reserve(kv_rows[r], p.n_tokens[r]).ok());
      rows.push_back(kv->attention_row(kv_rows[r], static_cast<int32_t>(n_tokens), p.n_tokens[r]));
      n_tokens += p.n_tokens[r];
    }
    k.resize(size_t(n_tokens) * kv_dim);
    v.resize(k.size());
    q.resize(size_t(n_tokens) * p.params.n_heads * p.params.head_dim);
    for (auto& x : k) x = normal(rng);
    for (auto& x : v) x = normal(rng);
    for (auto& x : q) x = normal(rng);
    cpu::kv_store(p.geometry, 0, rows, k.data(), v.data(), backend.pool());
  }
};

// Straightforward float64 attention reading the same f16 cache.
std::vector<double> naive_attention(const Problem& p, const Fixture& f) {
  const KvGeometry& g = p.geometry;
  const int group = p.params.n_heads / p.params.n_kv_heads;
  std::vector<double> out(f.q.size());
  for (const AttentionRow& row : f.rows) {
    for (int i = 0; i < row.n_tokens; ++i) {
      const int token = row.first_token + i;
      const int visible = row.kv_start + i + 1;
      for (int h = 0; h < p.params.n_heads; ++h) {
        const int kv_head = h / group;
        const float* q = f.q.data() + (size_t(token) * p.params.n_heads + h) * g.head_dim;
        std::vector<double> scores(visible);
        double max_score = -1e300;
        for (int t = 0; t < visible; ++t) {
          auto* page = static_cast<const uint8_t*>(row.pages[t / g.page_tokens]);
          auto* key = reinterpret_cast<const uint16_t*>(page + g.offset(0, false, kv_head)) + (t % g.page_tokens) * g.head_dim;
          double s = 0;
          for (int d = 0; d < g.head_dim; ++d) s += double(q[d]) * fp16_to_fp32(key[d]);
          scores[t] = s * p.params.scale;
          max_score = std::max(max_score, scores[t]);
        }
        double sum = 0;
        for (auto& s : scores) sum += (s = std::exp(s - max_score));
        for (int d = 0; d < g.head_dim; ++d) {
          double acc = 0;
          for (int t = 0; t < visible; ++t) {
            auto* page = static_cast<const uint8_t*>(row.pages[t / g.page_tokens]);
            auto* value = reinterpret_cast<const uint16_t*>(page + g.offset(0, true, kv_head)) + (t % g.page_tokens) * g.head_dim;
            acc += scores[t] / sum * fp16_to_fp32(value[d]);
          }
          out[(size_t(token) * p.params.n_heads + h) * g.head_dim + d] = acc;
        }
      }
    }
  }
  return out;
}

Problem make_problem() {
  Problem p;
  p.geometry.n_layers = 1;
  p.geometry.n_kv_heads = 3;
  p.geometry.head_dim = 64;
  p.geometry.page_tokens = 16;
  p.params = {9, 3, 64, 0.125f};
  p.kv_starts = {0, 5, 40, 17};
  p.n_tokens = {37, 1, 5, 20};  // prefill over several chunks, decode, verify-like, mixed
  return p;
}

std::vector<float> run(cpu::Isa isa, const Problem& p, Fixture& f) {
  std::vector<float> out(f.q.size(), NAN);
  cpu::AttentionScratch scratch;
  cpu::attention(isa, f.backend.pool(), scratch, p.geometry, 0, f.rows, p.params, f.q.data(), out.data());
  return out;
}

std::vector<cpu::Isa> available_isas() {
  std::vector<cpu::Isa> isas = {cpu::Isa::kScalar};
  if (cpu_features().avx2 && cpu_features().fma && cpu_features().f16c) isas.push_back(cpu::Isa::kAvx2);
  return isas;
}

TEST(Attention, MatchesFloat64ReferenceOverRaggedRowsAndPages) {
  const Problem p = make_problem();
  Fixture f(p, 1);
  const std::vector<double> reference = naive_attention(p, f);
  for (cpu::Isa isa : available_isas()) {
    const std::vector<float> out = run(isa, p, f);
    double max_error = 0, max_value = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      max_error = std::max(max_error, std::fabs(out[i] - reference[i]));
      max_value = std::max(max_value, std::fabs(reference[i]));
    }
    // q and probabilities are rounded to f16 (as llama.cpp does): ~1e-3 relative.
    EXPECT_LT(max_error / max_value, 4e-3) << cpu::isa_name(isa);
  }
}

TEST(Attention, RowResultsDoNotDependOnTheBatch) {
  const Problem full = make_problem();
  Fixture batch(full, 2);
  for (cpu::Isa isa : available_isas()) {
    const std::vector<float> together = run(isa, full, batch);
    // Row 2 alone, with the same cache contents: rebuild a one-row problem over the same pages.
    AttentionRow alone = batch.rows[2];
    const int64_t stride = int64_t(full.params.n_heads) * full.params.head_dim;
    std::vector<float> q(batch.q.begin() + alone.first_token * stride,
                         batch.q.begin() + (alone.first_token + alone.n_tokens) * stride);
    alone.first_token = 0;
    std::vector<float> out(q.size());
    cpu::AttentionScratch scratch;
    cpu::attention(isa, batch.backend.pool(), scratch, full.geometry, 0, std::span(&alone, 1), full.params, q.data(),
                   out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(out[i], together[batch.rows[2].first_token * stride + i]) << cpu::isa_name(isa) << " element " << i;
    }
  }
}

// Every ISA runs the same float operations in the same order (attention_impl.h), so the
// scalar, AVX2 and AVX-512 kernels agree bit for bit: pages of 24 positions (chunks of 16 keys cross
// pages), a head_dim of 72 (a tail past the 16 lanes), a sliding window that starts mid-chunk,
// sinks, and 300 keys (past the value passes' spans of 64 and 128 keys).
TEST(Attention, IsasAgreeBitForBitAcrossPagesWindowsAndSinks) {
  if (!(cpu_features().avx2 && cpu_features().fma && cpu_features().f16c)) GTEST_SKIP() << "no AVX2";
  const std::vector<float> sinks = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.25f};
  for (int head_dim : {64, 72}) {
    for (int window : {0, 37}) {
      for (bool with_sinks : {false, true}) {
        Problem p;
        p.geometry.n_layers = 1;
        p.geometry.n_kv_heads = 2;
        p.geometry.head_dim = head_dim;
        p.geometry.page_tokens = 24;
        p.params = {6, 2, head_dim, 0.11f, window, with_sinks ? sinks.data() : nullptr};
        p.kv_starts = {0, 3, 300, 40};
        p.n_tokens = {21, 1, 4, 17};
        Fixture f(p, 7);
        auto run_with = [&](cpu::AttentionTaskFn kernel) {
          std::vector<float> out(f.q.size(), NAN);
          cpu::AttentionScratch scratch;
          cpu::attention_with(kernel, f.backend.pool(), scratch, p.geometry, 0, f.rows, p.params, f.q.data(),
                              out.data());
          return out;
        };
        const std::vector<float> scalar = run_with(cpu::attention_task_scalar);
        std::vector<std::pair<const char*, cpu::AttentionTaskFn>> kernels = {{"avx2", cpu::attention_task_avx2}};
        if (cpu_features().avx512()) kernels.push_back({"avx512", cpu::attention_task_avx512});
        for (const auto& [name, kernel] : kernels) {
          const std::vector<float> out = run_with(kernel);
          for (size_t i = 0; i < scalar.size(); ++i) {
            ASSERT_EQ(scalar[i], out[i]) << name << " element " << i << " head_dim " << head_dim << " window "
                                         << window << " sinks " << with_sinks;
          }
        }
      }
    }
  }
}

// The softmax's e^x is llama.cpp's (ARM optimized-routines polynomial) on every ISA: within 3
// ulp of expf, and the AVX2 lanes equal the scalar function, down through the subnormals to 0.
TEST(Attention, SoftmaxExpIsCloseToExpfAndEqualAcrossIsas) {
  std::vector<float> x;
  for (float v = -110.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
  x.insert(x.end(), {0.0f, -0.0f, -1e-30f, -87.3f, -103.9f, -104.1f, -150.0f, -1e9f, -INFINITY});
  for (float v : x) {
    const float e = cpu::detail::exp_for_softmax(v);
    const float libm = std::exp(v);
    if (libm >= 1e-37f) {
      EXPECT_LE(std::fabs(e - libm), 3.0f * (std::nextafter(libm, INFINITY) - libm)) << v;
    } else {
      EXPECT_LE(e, 2e-37f) << v;
    }
  }
  if (!(cpu_features().avx2 && cpu_features().fma)) GTEST_SKIP() << "no AVX2";
  std::vector<float> lanes(x.size());
  cpu::softmax_exp_avx2(x.data(), lanes.data(), static_cast<int>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(lanes[i]), std::bit_cast<uint32_t>(cpu::detail::exp_for_softmax(x[i])))
        << x[i];
  }
}

}  // namespace
}  // namespace so
