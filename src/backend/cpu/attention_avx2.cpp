#include "backend/cpu/attention_avx2.h"

namespace so::cpu {

void attention_task_avx2(const AttentionTask& task, AlignedBuffer& scratch) {
  detail::run_attention_task<detail::avx2::Avx2Vec>(task, scratch);
}

void softmax_exp_avx2(const float* x, float* out, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, detail::avx2::exp_for_softmax(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = detail::exp_for_softmax(x[i]);
}

}  // namespace so::cpu
