// Choosing and creating the backend a run computes on.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace so {

enum class BackendKind { kCpu, kCuda };

struct BackendOptions {
  BackendKind kind = BackendKind::kCpu;
  int n_threads = 0;               // CPU compute, or CUDA host attention; 0 is one per physical core
  double sim_link_gbps = 0.0;      // CPU: throttle of the copy engine (--sim-link-gbps)
  // Hard budget of device memory (--gpu-mem); 0: what is free (CUDA), no cap (CPU). On the
  // CPU backend it makes the "device" arena act as a card of that size.
  int64_t gpu_memory_bytes = 0;
  int device = 0;                  // CUDA: device index
};

// "cpu", "cuda" or "auto" (CUDA when a GPU is found, else CPU).
Result<BackendKind> parse_backend_kind(std::string_view text);
// Whether this build has the CUDA backend and a CUDA device is present.
bool cuda_available();
Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& options);

}  // namespace so
