#include "backend/backend_factory.h"

#include "backend/cpu/cpu_backend.h"
#ifdef SPECOFFLOAD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace so {

bool cuda_available() {
#ifdef SPECOFFLOAD_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

Result<BackendKind> parse_backend_kind(std::string_view text) {
  if (text == "cpu") return BackendKind::kCpu;
  if (text == "cuda") return BackendKind::kCuda;
  if (text == "auto") return cuda_available() ? BackendKind::kCuda : BackendKind::kCpu;
  return invalid_argument("backend '", text, "' is not one of cpu, cuda, auto");
}

Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& options) {
  if (options.kind == BackendKind::kCpu) {
    CpuBackendOptions cpu;
    cpu.n_threads = options.n_threads;
    cpu.sim_link_gbps = options.sim_link_gbps;
    cpu.device_budget_bytes = options.gpu_memory_bytes;
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(cpu));
  }
#ifdef SPECOFFLOAD_HAVE_CUDA
  if (options.sim_link_gbps > 0) {
    return invalid_argument("--sim-link-gbps throttles the CPU backend's copy engine; the CUDA backend copies over the "
                            "real link, so drop the option or use --backend cpu");
  }
  CudaBackendOptions cuda;
  cuda.device = options.device;
  cuda.memory_budget_bytes = options.gpu_memory_bytes;
  cuda.host_threads = options.n_threads;
  SO_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::create(cuda));
  return std::unique_ptr<Backend>(std::move(backend));
#else
  return unsupported("this build has no CUDA backend (nvcc was not found when it was configured); "
                     "rebuild on a machine with the CUDA toolkit or run with --backend cpu");
#endif
}

}  // namespace so
