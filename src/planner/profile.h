// What the machine can do, measured once by `specoffload profile` (runtime/profile_machine)
// and read by the planner: link and disk bandwidths, matmul speed per weight dtype,
// attention speed, memory sizes. Plain data with a JSON form.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "base/status.h"
#include "planner/model_shape.h"
#include "tensor/dtype.h"

namespace so {

// A weight matrix of n_params parameters and `bytes` bytes, over T token rows, takes
//   bytes / (weight_gbps * 1e9) + 2 * n_params * T / (gflops * 1e9) seconds:
// reading the weights once, then arithmetic per token.
struct MatmulSpeed {
  double weight_gbps = 0;
  double gflops = 0;
};

struct HardwareProfile {
  std::string backend;          // "cpu (avx2, 2 threads)", "cuda (H100)"
  int n_threads = 0;
  double copy_pinned_gbps = 0;    // host -> device from pinned memory (the streamed layers)
  double copy_pageable_gbps = 0;  // host -> device from ordinary memory
  double disk_read_gbps = 0;      // the model file, cold
  double attention_gflops = 0;    // KV in device memory: 4 * head_dim flops per (query head, key) pair
  double cpu_attention_gflops = 0;  // KV in host memory, attention on CPU threads
  double step_overhead_seconds = 0;  // per forward step: launches, sampling, bookkeeping
  double op_overhead_seconds = 0;    // per op (a layer runs about 16): dispatch and synchronization
  int64_t device_memory_bytes = 0;
  int64_t host_memory_bytes = 0;
  std::map<DType, MatmulSpeed> matmul;  // by weight dtype
  // Measured step costs of particular models, by model_key (file name and size).
  std::map<std::string, StepCost> models;

  // The speed for `dtype`, or the slowest measured one when it was not measured.
  MatmulSpeed matmul_speed(DType dtype) const;
  std::string to_json() const;
  static Result<HardwareProfile> from_json(const std::string& text);
  static Result<HardwareProfile> load(const std::string& path);
};

}  // namespace so
